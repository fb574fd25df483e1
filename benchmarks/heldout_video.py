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
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("heldout_video")

# Face detectors of the measurement, in report order: name -> what it is.
DETECTORS = {
    "centerface": "CenterFace, score >= 0.2",
    "mtcnn": "MTCNN, every face its cascade accepts",
}
# Test-split scenes (anoncodec/data/holdout.py) usable as the background.
BACKGROUNDS = {"basketball1": "basketball1.png", "messi5": "messi5.jpg"}
FRAME_HW = (480, 640)
HEAD_PX = (30.0, 160.0)
# CenterFace score of the ground truth where paste() gives none (the corpus labeler's).
LABEL_THRESHOLD = 0.4
FAMILIES = ("ours", "guard", "jpeg", "blur-jpeg")
CHECKPOINT_FAMILIES = ("ours", "guard")
DEFAULT_BASELINES = ("jpeg:10", "blur-jpeg:10")
AVATAR_ASSET = ROOT / "tests" / "assets" / "avatar_009.png"
CORPUS = ROOT / "data" / "corpora"
SAMPLES = ROOT / "data" / "samples"


# --------------------------------------------------------------------- runs of frames


@dataclass(frozen=True)
class FrameRuns:
    """Frames with a face found, and the longest run of them.

    Attributes:
        frames: frames of the clip.
        with_face: frames whose flag is set.
        longest: longest run of consecutive flagged frames.
        runs: number of separate runs.
    """

    frames: int
    with_face: int
    longest: int
    runs: int

    @classmethod
    def from_flags(cls, flags: Sequence[bool]) -> FrameRuns:
        """From one bool per frame, in clip order."""
        longest = current = runs = 0
        for flag in flags:
            if flag:
                current += 1
                runs += current == 1
                longest = max(longest, current)
            else:
                current = 0
        return cls(len(flags), int(sum(bool(f) for f in flags)), longest, runs)

    @property
    def share(self) -> float:
        """``with_face / frames`` (``nan`` for an empty clip)."""
        return self.with_face / self.frames if self.frames else float("nan")

    def to_dict(self, fps: float) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "share": self.share,
            "longest_s": self.longest / fps,
        }


# ------------------------------------------------------------------------- arguments


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


def parse_methods(
    specs: Sequence[str] | None, default_ours: str = "demo"
) -> list[tuple[str, str, str]]:
    """``--method`` values -> ``(key, family, value)``, checked.

    Args:
        specs: the ``--method`` values; none: ``ours:<default_ours>`` and
            :data:`DEFAULT_BASELINES`.
        default_ours: checkpoint of the default ``ours`` row.

    Raises:
        ConfigError: unknown family, no checkpoint, a bad quality or a spec given twice.
    """
    from anoncodec.errors import ConfigError

    if not specs:
        specs = [f"ours:{default_ours}", *DEFAULT_BASELINES]
    parsed = []
    for spec in specs:
        family, sep, value = spec.partition(":")
        if family not in FAMILIES or not sep:
            raise ConfigError(
                f"--method {spec!r}; expected ours:NAME_OR_PATH, guard:NAME_OR_PATH, jpeg:Q or "
                "blur-jpeg:Q (e.g. --method jpeg:10)"
            )
        if family in CHECKPOINT_FAMILIES and not value:
            raise ConfigError(f"--method {spec!r}: name the checkpoint, e.g. {family}:demo")
        if family not in CHECKPOINT_FAMILIES:
            try:
                quality = int(value)
            except ValueError:
                quality = 0
            if not 1 <= quality <= 100:
                raise ConfigError(
                    f"--method {spec!r}: quality {value!r}; expected an integer "
                    f"1..100, e.g. {family}:10"
                )
            value = str(quality)
        parsed.append((f"{family}:{value}", family, value))
    keys = [k for k, _, _ in parsed]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"--method lists {twice} more than once")
    return parsed


def build_methods(
    parsed: Sequence[tuple[str, str, str]], device: str, centerface: Any
) -> dict[str, Any]:
    """``{key: Method}`` in ``parsed`` order (checkpoints are loaded here)."""
    from anoncodec.evaluation.methods import (
        ANONYMIZER_THRESHOLD,
        anonymizer_method,
        codec_method,
        jpeg_method,
    )

    methods = {}
    for key, family, value in parsed:
        if family == "ours":
            methods[key] = codec_method(value, device)
        elif family == "guard":
            from anoncodec.edge.guard import FaceGuard, GuardConfig

            methods[key] = codec_method(value, device, FaceGuard(GuardConfig(), detector=centerface))
        elif family == "jpeg":
            methods[key] = jpeg_method(int(value))
        else:
            methods[key] = anonymizer_method(
                "blur", int(value), centerface, ANONYMIZER_THRESHOLD
            )
    return methods


def default_checkpoint_name() -> str:
    from anoncodec.weights import CHECKPOINT_ENV, default_checkpoint

    return os.environ.get(CHECKPOINT_ENV) or default_checkpoint().name


# ---------------------------------------------------------------------------- clip


@dataclass
class Clip:
    """Frames and their ground truth.

    Attributes:
        frames: uint8 ``[H, W, 3]`` RGB per frame.
        heads: float32 ``[K, 4]`` ground-truth heads per frame (the pasted faces').
        face_ids: int ``[K]`` per frame: which face each head is.
        background_heads: float32 ``[J, 4]`` per frame: the background's own heads
            that no pasted head overlaps in that frame (empty for a video).
        fps: frame rate.
        static_heads: float32 ``[J, 4]``: every head of the background, left out of
            PSNR-out in every frame, occluded or not.
        info: what the clip is made of, for the record.
    """

    frames: list[np.ndarray]
    heads: list[np.ndarray]
    face_ids: list[np.ndarray]
    background_heads: list[np.ndarray]
    fps: float
    static_heads: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 4), np.float32)
    )
    info: dict[str, Any] = field(default_factory=dict)


def _load_rgb(path: str | Path) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB of an image file.

    Raises:
        DatasetError: the file is missing or not an image.
    """
    import cv2

    from anoncodec.errors import DatasetError

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read image {str(path)!r}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _test_file(path: str, corpus: str, identity: str, kind: str) -> Any:
    from anoncodec.data.corpus import CorpusFile

    scene = f"fake-avatars/{identity}" if corpus == "fake-avatars" else path
    return CorpusFile(path, corpus, "", "", identity, scene, kind, "")


def _heads_of(rgb: np.ndarray, centerface: Any) -> np.ndarray:
    """CenterFace (>= :data:`LABEL_THRESHOLD`) faces grown to head boxes ``[K, 4]``."""
    from anoncodec.detectors import face_to_head_box

    faces = np.asarray(centerface.detect(rgb, LABEL_THRESHOLD), np.float32)
    if not faces.size:
        return np.zeros((0, 4), np.float32)
    return face_to_head_box(faces.reshape(-1, 5), image_hw=rgb.shape[:2])


def _portrait_part(path: Path, file: Any, centerface: Any) -> Any:
    """The head of an openpeople portrait as a face part (its largest face)."""
    import cv2

    from anoncodec.data.composite import parts_from_labels

    rgb = _load_rgb(path)
    scale = min(1.0, 512 / max(rgb.shape[:2]))  # heads are pasted at most 160 px
    rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    heads = _heads_of(rgb, centerface)
    if not len(heads):
        logger.warning("no face in %s: not used", path)
        return None
    head = heads[np.argmax((heads[:, 2] - heads[:, 0]) * (heads[:, 3] - heads[:, 1]))]
    faces, _ = parts_from_labels(rgb, {"heads": [head], "persons": []}, file)
    return faces[0] if faces else None


def heldout_faces(
    corpus: str | Path, centerface: Any
) -> tuple[list[Any], list[Any]]:
    """Every test-split face part available: ``(avatars, portraits)``.

    Raises:
        DatasetError: a face that is not in the test split (a wrong holdout).
    """
    from anoncodec.data.composite import avatar_part
    from anoncodec.data.holdout import split_of
    from anoncodec.errors import DatasetError

    corpus = Path(corpus)
    avatars = {}  # identity -> (path, file)
    pool = sorted((corpus / "fake-avatars").glob("*.png"))
    for path in pool:
        if path.stem.isdigit() and int(path.stem) % 10 == 9:
            ident = f"avatar-{int(path.stem):03d}"
            rel = f"fake-avatars/{path.name}"
            avatars[ident] = (path, _test_file(rel, "fake-avatars", ident, "face"))
    if "avatar-009" not in avatars:
        avatars["avatar-009"] = (
            AVATAR_ASSET,
            _test_file("fake-avatars/009.png", "fake-avatars", "avatar-009", "face"),
        )
    portraits = []
    for ident in ("P009", "P010"):
        path = corpus / "openpeople" / ident / "studio_portrait.jpg"
        if path.is_file():
            rel = f"openpeople/{ident}/studio_portrait.jpg"
            portraits.append((path, _test_file(rel, "openpeople", ident, "portrait")))
    for _, file in [*avatars.values(), *portraits]:
        if split_of(file) != "test":
            raise DatasetError(f"{file.identity} is in the {split_of(file)} split")
    avatar_parts = [avatar_part(_load_rgb(p), f) for p, f in avatars.values()]
    portrait_parts = [_portrait_part(p, f, centerface) for p, f in portraits]
    portrait_parts = [p for p in portrait_parts if p is not None]
    return avatar_parts, portrait_parts


def _pick(parts: list[Any], n: int, rng: np.random.Generator) -> list[Any]:
    return [parts[i] for i in rng.permutation(len(parts))[:n]]


def _background(name: str) -> np.ndarray:
    import cv2


    rgb = _load_rgb(SAMPLES / BACKGROUNDS[name])
    H, W = FRAME_HW
    if rgb.shape[:2] != (H, W):
        rgb = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def face_path(
    index: int, lanes: int, u: float, phase: float, frame_hw: tuple[int, int]
) -> tuple[float, float, float]:
    """Head center ``(cx, cy)`` and height of face ``index`` at time ``u`` in [0, 1].

    Each face keeps to its own horizontal lane (so heads never overlap) and crosses
    the frame once, eased in and out, alternating direction per lane; its head height
    swings log-smoothly once between :data:`HEAD_PX`, starting at ``phase``; it bobs
    up and down within its lane by what the head leaves free.
    """
    H, W = frame_hw
    lane_h = H / lanes
    lo, hi = math.log(HEAD_PX[0]), math.log(min(HEAD_PX[1], lane_h))
    size = math.exp(lo + (hi - lo) * (0.5 - 0.5 * math.cos(2 * math.pi * (u + phase))))
    ease = 0.5 - 0.5 * math.cos(math.pi * u)
    across = ease if index % 2 == 0 else 1 - ease
    cx = W * (0.12 + 0.76 * across)
    room = max(0.0, (lane_h - size) / 2)
    cy = lane_h * (index + 0.5) + 0.6 * room * math.sin(2 * math.pi * (u + phase))
    return cx, cy, size


def _overlapped(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """bool ``[K]``: which of ``boxes`` intersect some box of ``others``."""
    if not len(boxes) or not len(others):
        return np.zeros(len(boxes), bool)
    a, b = boxes[:, None], others[None]
    w = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    h = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return ((w > 0) & (h > 0)).any(axis=1)


def composite_clip(
    frames: int,
    fps: float,
    faces: int,
    background: str,
    seed: int,
    corpus: str | Path,
    centerface: Any,
) -> Clip:
    """The held-out composite clip (see the module docstring)."""
    from anoncodec.data.composite import degrade, paste

    rng = np.random.default_rng(seed)
    avatar_parts, portrait_parts = heldout_faces(corpus, centerface)
    # Up to one portrait (a real-photo head) among the avatars, when fetched.
    chosen = _pick(portrait_parts, 1 if faces > 1 else 0, rng)
    chosen += _pick(avatar_parts, faces - len(chosen), rng)
    # Too few faces (only the committed avatar): reuse them, in another lane and phase.
    chosen = [chosen[i % len(chosen)] for i in range(faces)]
    order = rng.permutation(faces)
    chosen = [chosen[i] for i in order]
    flips = [bool(i % 2) for i in range(faces)]
    phases = rng.uniform(0, 1, faces)
    base = _background(background)
    bg_heads = _heads_of(base, centerface)
    clip = Clip([], [], [], [], fps, bg_heads)
    for t in range(frames):
        u = t / max(1, frames - 1)
        canvas = base.copy()
        placed = []
        for i, part in enumerate(chosen):
            cx, cy, size = face_path(i, faces, u, float(phases[i]), FRAME_HW)
            ref = part.heads[0]
            scale = size / float(ref[3] - ref[1])
            pw = part.rgb.shape[1]
            hx = (pw - (ref[0] + ref[2]) / 2) if flips[i] else (ref[0] + ref[2]) / 2
            x, y = cx - hx * scale, cy - (ref[1] + ref[3]) / 2 * scale
            placed.append((size, i, part, scale, x, y))
        heads, ids = [], []
        for _, i, part, scale, x, y in sorted(placed, key=lambda p: p[0]):
            h, _ = paste(canvas, part, scale, x, y, flip=flips[i])
            heads.append(h[:1])
            ids += [i] * len(h[:1])
        heads = np.concatenate(heads).reshape(-1, 4)
        clip.frames.append(degrade(canvas, np.random.default_rng([seed, t])))
        clip.heads.append(heads)
        clip.face_ids.append(np.asarray(ids, int))
        clip.background_heads.append(bg_heads[~_overlapped(bg_heads, heads)])
    clip.info = {
        "source": "composite",
        "background": f"data/samples/{BACKGROUNDS[background]}",
        "size": list(FRAME_HW),
        "faces": [p.identity for p in chosen],
        "head_px": list(HEAD_PX),
        "seed": seed,
        "ground_truth": "pasted head boxes, exactly as paste() placed them",
        "background_heads": np.round(bg_heads, 1).tolist(),
        "background_heads_from": f"CenterFace >= {LABEL_THRESHOLD} on the still "
        "background, grown to head boxes",
    }
    return clip


def video_clip(
    path: str | Path,
    frames: int,
    fps: float | None,
    labels: str | Path | None,
    centerface: Any,
) -> Clip:
    """A real clip: its first ``frames`` frames (0: all) and their ground truth.

    Raises:
        DatasetError: the file gives no frame, or the labels do not fit it.
    """
    import cv2

    from anoncodec.errors import DatasetError

    capture = cv2.VideoCapture(str(path))
    file_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0)
    images = []
    while not frames or len(images) < frames:
        ok, bgr = capture.read()
        if not ok:
            break
        images.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    capture.release()
    if not images:
        raise DatasetError(f"--video {str(path)!r}: no frame could be read")
    fps = fps or file_fps or 10.0
    if labels:
        try:
            boxes = json.loads(Path(labels).read_text())["heads"]
            heads = [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(
                f"--labels {str(labels)!r}: {exc}; expected JSON "
                '{"heads": [[[x1, y1, x2, y2], ...], ...]}, one list per frame'
            ) from exc
        if len(heads) < len(images):
            raise DatasetError(
                f"--labels {str(labels)!r} has {len(heads)} frames; the clip has "
                f"{len(images)} (pass --frames {len(heads)})"
            )
        heads, truth = heads[: len(images)], f"head boxes of {labels}"
    else:
        heads = [_heads_of(f, centerface) for f in images]
        truth = (
            f"CenterFace >= {LABEL_THRESHOLD} on the original frames, grown to head "
            "boxes (no --labels): the original's CenterFace row is complete by "
            "construction"
        )
    empty = np.zeros((0, 4), np.float32)
    return Clip(
        images,
        heads,
        [np.arange(len(h)) for h in heads],
        [empty] * len(images),
        fps,
        info={
            "source": "video",
            "video": str(path),
            "size": list(images[0].shape[:2]),
            "ground_truth": truth,
        },
    )


# ----------------------------------------------------------------------- measurement


def _detect(detectors: dict[str, Any], frame_rgb: np.ndarray) -> dict[str, np.ndarray]:
    from anoncodec.evaluation.methods import ANONYMIZER_THRESHOLD

    return {
        "centerface": detectors["centerface"].detect(frame_rgb, ANONYMIZER_THRESHOLD),
        "mtcnn": detectors["mtcnn"].detect(frame_rgb, 0.0),
    }


def measure(
    clip: Clip, methods: dict[str, Any], detectors: dict[str, Any], progress: bool
) -> dict[str, Any]:
    """Per-frame flags, bytes and PSNR-out of the original and every method.

    Returns:
        ``{"original": {det: {"heads": [...], "background": [...]}}, key: {"bytes",
        "psnr_out", det: {"heads": [...], "background": [...]}}}``: per frame, the
        number of pasted (ground-truth) heads and of background heads found
        (original) or found again (a method).
    """
    from tqdm.auto import tqdm

    from anoncodec.evaluation.heldout import heads_found
    from anoncodec.evaluation.metrics import psnr_outside

    def empty() -> dict[str, dict[str, list]]:
        return {d: {"heads": [], "background": []} for d in DETECTORS}

    out: dict[str, Any] = {"original": empty()}
    for key in methods:
        out[key] = {"bytes": [], "psnr_out": [], **empty()}
    bar = tqdm(
        total=len(clip.frames) * (1 + len(methods)),
        desc="heldout video",
        unit="frame",
        disable=not progress or None,
    )
    for frame, heads, others in zip(clip.frames, clip.heads, clip.background_heads):
        masked = np.concatenate([heads, clip.static_heads]).reshape(-1, 4)
        found = {}
        for name, dets in _detect(detectors, frame).items():
            found[name] = (heads_found(heads, dets), heads_found(others, dets))
            out["original"][name]["heads"].append(int(found[name][0].sum()))
            out["original"][name]["background"].append(int(found[name][1].sum()))
        bar.update()
        for key, method in methods.items():
            data = method.encode(frame)
            decoded = method.decode(data)
            row = out[key]
            row["bytes"].append(len(data))
            row["psnr_out"].append(float(psnr_outside(decoded, frame, masked)))
            for name, dets in _detect(detectors, decoded).items():
                again_heads = found[name][0] & heads_found(heads, dets)
                again_bg = found[name][1] & heads_found(others, dets)
                row[name]["heads"].append(int(again_heads.sum()))
                row[name]["background"].append(int(again_bg.sum()))
            bar.update()
    bar.close()
    return out


def summarize(
    key: str, label: str, params: dict[str, Any], row: dict[str, Any], fps: float
) -> dict[str, Any]:
    """One method's (or the original's) numbers from its per-frame row."""
    from anoncodec.evaluation.metrics import nan_mean

    summary: dict[str, Any] = {"key": key, "label": label, "params": params}
    if "bytes" in row:
        b = np.asarray(row["bytes"], np.float64)
        psnr = [p for p in row["psnr_out"] if math.isfinite(p)]
        summary.update(
            kbit_s=float(b.mean() * 8 * fps / 1000),
            bytes_per_frame={
                "mean": float(b.mean()),
                "median": float(np.median(b)),
                "p90": float(np.percentile(b, 90)),
            },
            psnr_out=nan_mean(psnr) if psnr else float("nan"),
        )
    for group in ("heads", "background"):
        summary[group] = {
            d: FrameRuns.from_flags([n > 0 for n in row[d][group]]).to_dict(fps)
            for d in DETECTORS
        }
    return summary


# --------------------------------------------------------------------------- report


def _runs(r: dict[str, Any]) -> list[str]:
    return [
        f"{r['with_face']}/{r['frames']} ({100 * r['share']:.0f}%)",
        f"{r['longest']} ({r['longest_s']:.1f} s)",
    ]


def _num(value: Any, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _table(
    summaries: Sequence[dict[str, Any]], group: str, rate: bool = True
) -> list[str]:
    header = ["method", "kbit/s", "PSNR-out (dB)"] if rate else ["method"]
    for d in DETECTORS:
        name = "CenterFace" if d == "centerface" else "MTCNN"
        header += [f"{name}: frames with a face found again", f"{name}: longest run"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for s in summaries:
        cells = [s["key"]]
        if rate:
            cells += [_num(s.get("kbit_s")), _num(s.get("psnr_out"), 2)]
        for d in DETECTORS:
            cells += _runs(s[group][d])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_report(record: dict[str, Any]) -> str:
    clip = record["clip"]
    frames, fps = record["frames"], record["fps"]
    if clip["source"] == "composite":
        what = (
            f"Composite clip of {frames} frames at {fps:g} fps "
            f"({frames / fps:.1f} s, {clip['size'][1]}x{clip['size'][0]}), only "
            f"test-split material: background `{clip['background']}`, faces "
            + ", ".join(f"`{f}`" for f in clip["faces"])
            + f", heads {clip['head_px'][0]:g}-{clip['head_px'][1]:g} px, seed "
            f"{clip['seed']}. Ground truth: {clip['ground_truth']}."
        )
    else:
        what = (
            f"Clip `{clip['video']}`, {frames} frames at {fps:g} fps "
            f"({clip['size'][1]}x{clip['size'][0]}). Ground truth: "
            f"{clip['ground_truth']}."
        )
    lines = [
        "# Held-out video: frames with a face found again",
        "",
        f"`{record['command']}`",
        "",
        f"Commit `{record['commit']}`, {record['device']}; {record['wall_s']:.0f} s.",
        "",
        what,
        "",
        "A ground-truth head is found when a detection's center lies inside it "
        "(CenterFace >= 0.2; MTCNN, every face its cascade accepts). A frame has a "
        "face found again when some head is found on the original frame and again "
        "on the decoded one; the *original* row counts frames with a head found on "
        "the original (the most any method can reach). Longest run: consecutive "
        "such frames. kbit/s: mean bytes per frame x 8 x fps. PSNR-out: outside "
        "every head"
        + (" (background heads included)" if clip["source"] == "composite" else "")
        + ", mean over frames.",
        "",
        *_table(record["summaries"], "heads"),
    ]
    bg = clip.get("background_heads") or []
    if bg:
        lines += [
            "",
            f"## The background's own faces ({len(bg)} static heads)",
            "",
            "Not part of the ground truth above; found by "
            f"{clip['background_heads_from']}. A frame counts only the background "
            "heads no pasted head overlaps there.",
            "",
            *_table(record["summaries"], "background", rate=False),
        ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


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
