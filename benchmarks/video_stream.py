"""Video streams: our codec against CenterFace + blur + H.264/H.265/AV1 over a CRF ladder,
at matched person recall.

    .venv/bin/python benchmarks/video_stream.py   # vtest.avi, 60 frames, ours + 3 ladders
    .venv/bin/python benchmarks/video_stream.py --frames 30 --method ours:mid \\
        --method blur-h264:28,38,43 --out /tmp/video
    .venv/bin/python benchmarks/video_stream.py --clip faces --method ours:mid \\
        --method blur-av1 --method h264:28 --crf-ladder

The clip (--clip): a video file, by default ../shared/data/samples/vtest.avi next to the
repository (OpenCV's pedestrian sample), its first --frames frames at --fps; its ground
truth heads are CenterFace (>= 0.4, grown to head boxes) on the original frames, or the
--labels file. --clip faces is the held-out composite clip of
benchmarks/heldout_video.py instead (test-split faces gliding over a test scene; exact
head boxes).

Methods (--method, repeatable; KIND:VALUE, a baseline's VALUE may list several CRFs
separated by commas, or be left out for its ladder):

  ours:NAME_OR_PATH          our codec intra-only: every frame coded alone with the
                             camera-side guard (real packets)
  ours-noguard:NAME_OR_PATH  the same without the guard
  h264:CRF  h265:CRF  av1:CRF
                             ffmpeg libx264 / libx265 / libsvtav1, yuv420p, constant
                             rate factor, one stream for the clip (--preset, --keyint)
  blur-h264:CRF  blur-h265:CRF  blur-av1:CRF
                             CenterFace (0.2, boxes grown 1.3x) + Gaussian blur on every
                             frame, then the codec

Default: ours:<default checkpoint>, blur-h264, blur-h265 and blur-av1 over their ladders
(x264/x265: CRF 23,28,33,38,43; SVT-AV1: 30,38,46,54,62). --crf-ladder sweeps every
baseline given with a CRF over its ladder too (or over the CRFs given to --crf-ladder).
New kinds register in anoncodec/evaluation/video_stream/methods.py (its docstring).

Per method: stream kbit/s (headers + packets x 8 x fps / frames), PSNR outside the
heads, frames where CenterFace (0.2) finds a ground-truth head on the original and again
on the decoded frame and the longest run of them, flicker (mean absolute frame-to-frame
luma change where the original is static: changes by less than 4 levels of 255) against
the original's, person recall (persons the served detector finds on the original frames
and again on the decoded ones, IoU >= 0.5, summed over frames). Then, per baseline kind
and ours row, the cheapest point of the ladder whose person recall is at least ours, and
the bitrate ratio. Writes OUT/video_stream.json (commit, versions, every per-frame
number), OUT/video_stream.md and OUT/video_stream.png.
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

from anoncodec.evaluation.heldout_video import BACKGROUNDS  # noqa: E402
from anoncodec.evaluation.video_codecs import CODECS  # noqa: E402
from anoncodec.evaluation.video_quality import STATIC_THRESHOLD  # noqa: E402

__all__ = ["main", "parse_args", "run"]

logger = logging.getLogger("video_stream")

DEFAULT_CLIP = ROOT.parent / "shared" / "data" / "samples" / "vtest.avi"
AVATAR_ASSET = ROOT / "tests" / "assets" / "avatar_009.png"
CORPUS = ROOT / "data" / "corpora"
SAMPLES = ROOT / "data" / "samples"
DEFAULT_BASELINES = ("blur-h264", "blur-h265", "blur-av1")


def _crfs(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CRFs like 23,28,33") from None


def _preset(text: str) -> tuple[str, str]:
    codec, sep, preset = text.partition("=")
    if not sep or codec not in CODECS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected CODEC=PRESET with CODEC one of {sorted(CODECS)}, "
            "e.g. h264=veryfast or av1=10")
    return codec, preset


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clip", default=str(DEFAULT_CLIP),
                   help="a video file, or 'faces' for the held-out composite clip "
                   "(default: %(default)s)")
    p.add_argument("--frames", type=int, default=60,
                   help="first frames of the clip (default: %(default)s)")
    p.add_argument("--fps", type=float, default=10.0,
                   help="frame rate for the streams and kbit/s (default: %(default)s)")
    p.add_argument("--labels", metavar="JSON",
                   help='head boxes of a video --clip: {"heads": [[[x1, y1, x2, y2], '
                   "...], ...]}, one list per frame (default: CenterFace on the original)")
    p.add_argument("--method", action="append", default=None, metavar="SPEC",
                   help="KIND:VALUE (see above); repeat for several (default: "
                   "ours:<default checkpoint>, " + ", ".join(DEFAULT_BASELINES) + ")")
    p.add_argument("--crf-ladder", nargs="?", const=[], type=_crfs, default=None,
                   metavar="CRFS",
                   help="sweep every baseline over its CRF ladder, or over CRFS "
                   "(comma-separated) when given")
    p.add_argument("--preset", action="append", type=_preset, default=[],
                   metavar="CODEC=PRESET",
                   help="encoder preset per codec, e.g. h264=veryfast, av1=10 (default: "
                   + ", ".join(f"{k}={c.default_preset}" for k, c in CODECS.items()) + ")")
    p.add_argument("--keyint", type=int, default=None,
                   help="frames between keyframes of the video codecs (default: the "
                   "encoder's, one keyframe per clip)")
    p.add_argument("--faces", type=int, default=3, choices=(1, 2, 3),
                   help="faces of --clip faces (default: %(default)s)")
    p.add_argument("--background", default="basketball1", choices=sorted(BACKGROUNDS),
                   help="background of --clip faces (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of --clip faces (default: %(default)s)")
    p.add_argument("--corpus", default=str(CORPUS),
                   help="fetched corpora, for --clip faces (default: %(default)s)")
    p.add_argument("--device", default="cpu",
                   help="torch device of our codec (default: %(default)s)")
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "video"),
                   help="folder of video_stream.json/.md/.png (default: %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="no png plot")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--log-level",
        default=os.environ.get("ANONCODEC_LOG_LEVEL", "WARNING"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging verbosity (default: $ANONCODEC_LOG_LEVEL or WARNING)",
    )
    return p.parse_args(argv)


def _specs(args: argparse.Namespace) -> list[str]:
    """``--method`` values with comma-separated CRFs split into one spec each."""
    if not args.method:
        from anoncodec.weights import CHECKPOINT_ENV, default_checkpoint

        ours = os.environ.get(CHECKPOINT_ENV) or default_checkpoint().name
        return [f"ours:{ours}", *DEFAULT_BASELINES]
    out = []
    for spec in args.method:
        kind, sep, values = spec.partition(":")
        if sep and "," in values and not kind.startswith("ours"):
            out += [f"{kind}:{v.strip()}" for v in values.split(",") if v.strip()]
        else:
            out.append(spec)
    return out


def _clip(args: argparse.Namespace, centerface):
    from anoncodec.errors import DatasetError
    from anoncodec.evaluation.heldout_video import composite_clip, video_clip

    if args.clip == "faces":
        if args.labels:
            raise DatasetError("--labels goes with a video --clip (the composite knows "
                               "its heads)")
        return composite_clip(args.frames, args.fps, args.faces, args.background,
                              args.seed, args.corpus, centerface, samples=SAMPLES,
                              avatar_asset=AVATAR_ASSET)
    if not Path(args.clip).is_file():
        raise DatasetError(f"--clip {args.clip!r} is not a file; pass a video, 'faces', "
                           f"or the committed excerpt {SAMPLES / 'vtest_excerpt.avi'}")
    clip = video_clip(args.clip, args.frames, args.fps, args.labels, centerface)
    if len(clip.frames) < 2:
        raise DatasetError(f"--clip {args.clip!r} gave {len(clip.frames)} frame(s); "
                           "expected at least 2")
    return clip


def _versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out: dict[str, str | None] = {}
    for pkg in ("imageio-ffmpeg", "tqdm", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _table(summaries: list[dict], matched: list[dict]) -> str:
    lines = [f"{'method':<28}{'kbit/s':>10}{'PSNR-out':>10}{'faces again':>13}"
             f"{'longest':>9}{'flicker':>9}{'recall':>8}"]
    for s in summaries:
        f = s["faces"]
        lines.append(
            f"{s['key']:<28}{s.get('kbit_s', float('nan')):>10.1f}"
            f"{s.get('psnr_out', float('nan')):>10.2f}"
            f"{f['with_face']:>7}/{f['frames']:<5}{f['longest']:>9}"
            f"{s['flicker']['decoded']:>9.2f}{s['persons']['share']:>8.3f}")
    for m in matched:
        got = (f"{m['key']} at {m['kbit_s']:.1f} kbit/s ({m['ratio']:.2f}x)"
               if m["key"] else "none")
        lines.append(f"matched recall {m['target']:.3f} of {m['ours']}: {m['baseline']} "
                     f"-> {got}; {m['reason']}")
    return "\n".join(lines)


def run(args: argparse.Namespace, command: str) -> int:
    from tqdm.auto import tqdm

    from anoncodec.detectors import CenterFaceDetector
    from anoncodec.errors import ConfigError
    from anoncodec.evaluation import environment, write_record
    from anoncodec.evaluation.methods import ANONYMIZER_THRESHOLD
    from anoncodec.evaluation.video_quality import served_person_detector
    from anoncodec.evaluation.video_stream import (
        Instruments,
        MethodContext,
        OriginalAnalysis,
        build_coders,
        markdown_report,
        matched_recall,
        measure_stream,
        parse_specs,
        plot_rate_recall,
        summarize_original,
        summarize_stream,
    )

    if args.frames < 2:
        raise ConfigError(f"--frames {args.frames}; expected at least 2")
    if args.fps <= 0:
        raise ConfigError(f"--fps {args.fps}; expected a positive frame rate")
    sweep = args.crf_ladder is not None
    specs = parse_specs(_specs(args), sweep=sweep, ladder=args.crf_ladder or None)
    start = time.perf_counter()
    progress = not args.no_progress
    centerface = CenterFaceDetector()
    context = MethodContext(args.device, centerface, dict(args.preset), args.keyint,
                            progress)
    coders = build_coders(specs, context)
    persons, person_conf = served_person_detector()
    instruments = Instruments(centerface, persons, person_conf, ANONYMIZER_THRESHOLD)
    clip = _clip(args, centerface)
    logger.info("clip: %d frames of %s", len(clip.frames), clip.frames[0].shape)
    original = OriginalAnalysis.of(clip, instruments, progress)
    summaries = [summarize_original(clip, original)]
    rows = {}
    for spec in tqdm(specs, desc="video streams", unit="method", disable=not progress or None):
        t0 = time.perf_counter()
        output = coders[spec.key](clip.frames, clip.fps)
        wall = time.perf_counter() - t0
        rows[spec.key] = measure_stream(clip, original, output, instruments, progress,
                                        spec.key)
        summaries.append(summarize_stream(spec, output, rows[spec.key], clip.fps, wall))
    matched = matched_recall(summaries)
    env = environment()
    env["versions"].update(_versions())
    if str(args.device).startswith("cuda"):
        env["device"] += f"; our codec on {args.device}"
    out = Path(args.out)
    record = {
        "benchmark": "video_stream",
        "command": command,
        "frames": len(clip.frames),
        "fps": clip.fps,
        "clip": clip.info,
        "static_threshold": STATIC_THRESHOLD,
        "person_conf": person_conf,
        "face_threshold": ANONYMIZER_THRESHOLD,
        "wall_s": round(time.perf_counter() - start, 1),
        "summaries": summaries,
        "matched_recall": matched,
        "per_frame": {
            "heads": [np.round(h, 1).tolist() for h in clip.heads],
            "original": {
                "faces_found": [int(f.sum()) for f in original.found],
                "persons": [int(len(p)) for p in original.persons],
            },
            **rows,
        },
        **env,
    }
    if not args.no_plot:
        plot_rate_recall(record, out / "video_stream.png")
        record["plot"] = "video_stream.png"
    write_record(record, out / "video_stream.json")
    (out / "video_stream.md").write_text(markdown_report(record))
    print(_table(summaries, matched))
    print(f"wrote {out / 'video_stream.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from anoncodec.evaluation.script import script_main

    return script_main("benchmarks/video_stream.py", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
