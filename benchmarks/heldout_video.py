"""Held-out video: in how many frames of a clip with faces is a face found again, and
for how long in a row, per method, at what stream rate.

    .venv/bin/python benchmarks/heldout_video.py   # demo, jpeg:10, blur-jpeg:10
    .venv/bin/python benchmarks/heldout_video.py --method ours:demo \\
        --method ours:runs/x/last.pt --method jpeg:10 --method blur-jpeg:10 \\
        --frames 60 --fps 10 --faces 3 --out docs/results/heldout_video
    .venv/bin/python benchmarks/heldout_video.py --video clip.mp4 --method ours:demo

The clip (default) is made only from test-split material (anoncodec/data/holdout.py)
with the composite tools of anoncodec/data/composite.py: a test scene (basketball1.png
or messi5.jpg, 640x480) as the background; 2-3 test-split faces (fake-avatars N with
N % 10 == 9: tests/assets/avatar_009.png, plus those of data/corpora/fake-avatars/ and
the openpeople P009/P010 studio portraits when the corpora were fetched) pasted with
paste(), each gliding across its own horizontal lane while its head grows and shrinks
smoothly between 30 and 160 px; every frame then gets its own seeded camera
degradation (degrade(): blur, low light, sensor noise, JPEG). The head boxes of the
pasted faces come exactly from paste(); they are the ground truth. The background's
own faces (CenterFace >= 0.4 on the still background, grown to head boxes) are static:
they are left out of PSNR-out and reported apart (in the frames where no pasted head
overlaps them).

--video PATH reads a real clip instead (up to --frames frames, --fps default: the
file's). Without --labels the ground truth is CenterFace (>= 0.4, grown to head boxes)
on the original frames, so the CenterFace row of the original is complete by
construction (the report says so). --labels is a JSON file {"heads": [[[x1, y1, x2,
y2], ...], ...]}: one list of head boxes per frame.

Methods (--method, repeatable; default: ours:<default checkpoint>, jpeg:10,
blur-jpeg:10):

  ours:NAME_OR_PATH  one of our checkpoints (a released name or a .pt), real packets
  guard:NAME_OR_PATH the same with the camera-side guard (CenterFace's faces erased in
                     the latent before coding)
  jpeg:Q             JPEG at quality Q (OpenCV/libjpeg)
  blur-jpeg:Q        the deface approach: CenterFace (0.2, boxes grown 1.3x) + Gaussian
                     blur, then JPEG at quality Q

Per frame and method: the bytes (stream kbit/s = mean bytes x 8 x fps / 1000), PSNR
outside every head (mean over frames, dB) and, for two face detectors (CenterFace at
0.2; MTCNN, every face its cascade accepts), whether some ground-truth head is found
on the original and found again on the decoded frame (a head is found when a
detection's center lies inside it). Per method and detector: the share of frames with
a face found again and the longest run of such consecutive frames. Writes
OUT/heldout_video.json (commit, versions, the clip, every per-frame flag) and
OUT/heldout_video.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from anoncodec.evaluation.heldout_video import (  # noqa: E402
    BACKGROUNDS,
    DEFAULT_BASELINES,
    DETECTORS,
    FrameRuns,
    build_methods,
    composite_clip,
    markdown_report,
    measure,
    parse_methods,
    summarize,
    video_clip,
)

# The logic lives in anoncodec.evaluation.heldout_video; these stay importable from here.
__all__ = ["DETECTORS", "FrameRuns", "main", "parse_args", "parse_methods", "run", "summarize"]

logger = logging.getLogger("heldout_video")

AVATAR_ASSET = ROOT / "tests" / "assets" / "avatar_009.png"
CORPUS = ROOT / "data" / "corpora"
SAMPLES = ROOT / "data" / "samples"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--method",
        action="append",
        default=None,
        metavar="SPEC",
        help="ours:NAME_OR_PATH, jpeg:Q or blur-jpeg:Q; repeat for several (default: "
        "ours:<default checkpoint>, " + ", ".join(DEFAULT_BASELINES) + ")",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=60,
        help="frames of the clip (with --video: at most this many, 0 = all; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate of the clip, for kbit/s and run lengths in seconds "
        "(default: 10, or the --video file's)",
    )
    p.add_argument(
        "--faces",
        type=int,
        default=3,
        choices=(1, 2, 3),
        help="faces pasted into the composite clip, one lane each "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--background",
        default="basketball1",
        choices=sorted(BACKGROUNDS),
        help="test-split scene behind the faces, resized to 640x480 "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--corpus",
        default=str(CORPUS),
        help="fetched corpora (make corpora); their test-split faces join "
        "tests/assets/avatar_009.png when present (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the faces, their paths and every frame's degradation "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--video",
        metavar="PATH",
        help="measure this clip instead of the composite (ground truth: --labels, "
        "else CenterFace on the original frames)",
    )
    p.add_argument(
        "--labels",
        metavar="JSON",
        help='head boxes of --video: {"heads": [[[x1, y1, x2, y2], ...], ...]}, '
        "one list per frame",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device of our codec and MTCNN (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        default=str(ROOT / "docs" / "results" / "heldout_video"),
        help="folder of heldout_video.json and heldout_video.md "
        "(default: %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--log-level",
        default=os.environ.get("ANONCODEC_LOG_LEVEL", "WARNING"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging verbosity (default: $ANONCODEC_LOG_LEVEL or WARNING)",
    )
    return p.parse_args(argv)


def default_checkpoint_name() -> str:
    from anoncodec.weights import CHECKPOINT_ENV, default_checkpoint

    return os.environ.get(CHECKPOINT_ENV) or default_checkpoint().name


def _versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out = {}
    for pkg in ("pillow", "facenet-pytorch", "tqdm"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def run(args: argparse.Namespace, command: str) -> int:
    from anoncodec.detectors import CenterFaceDetector
    from anoncodec.errors import ConfigError
    from anoncodec.evaluation import environment, write_record
    from anoncodec.evaluation.mtcnn import MtcnnFaceDetector

    if args.frames < (0 if args.video else 2):
        raise ConfigError(
            f"--frames {args.frames}; expected at least 2 (0 = all, with --video)"
        )
    if args.fps is not None and args.fps <= 0:
        raise ConfigError(f"--fps {args.fps}; expected a positive frame rate")
    if args.labels and not args.video:
        raise ConfigError("--labels goes with --video (the composite knows its heads)")
    default = "" if args.method else default_checkpoint_name()
    parsed = parse_methods(args.method, default)
    start = time.perf_counter()
    centerface = CenterFaceDetector()
    mtcnn = MtcnnFaceDetector(device=args.device)
    detectors = {"centerface": centerface, "mtcnn": mtcnn}
    methods = build_methods(parsed, args.device, centerface)
    if args.video:
        clip = video_clip(args.video, args.frames, args.fps, args.labels, centerface)
    else:
        clip = composite_clip(
            args.frames,
            args.fps or 10.0,
            args.faces,
            args.background,
            args.seed,
            args.corpus,
            centerface,
            samples=SAMPLES,
            avatar_asset=AVATAR_ASSET,
        )
    logger.info("clip: %d frames of %s", len(clip.frames), clip.frames[0].shape)
    rows = measure(clip, methods, detectors, progress=not args.no_progress)
    summaries = [summarize("original", "original", {}, rows["original"], clip.fps)]
    summaries += [
        summarize(k, m.label, m.params, rows[k], clip.fps) for k, m in methods.items()
    ]
    env = environment()
    env["versions"].update(_versions())
    if str(args.device).startswith("cuda"):
        env["device"] += f"; codec and MTCNN on {args.device}"
    record = {
        "benchmark": "heldout_video",
        "command": command,
        "frames": len(clip.frames),
        "fps": clip.fps,
        "clip": clip.info,
        "detectors": DETECTORS,
        "wall_s": round(time.perf_counter() - start, 1),
        "summaries": summaries,
        "per_frame": {
            "heads": [np.round(h, 1).tolist() for h in clip.heads],
            "face_ids": [ids.tolist() for ids in clip.face_ids],
            **rows,
        },
        **env,
    }
    out = Path(args.out)
    write_record(record, out / "heldout_video.json")
    (out / "heldout_video.md").write_text(markdown_report(record))
    print(f"wrote {out / 'heldout_video.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from anoncodec.evaluation.script import script_main

    return script_main("benchmarks/heldout_video.py", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
