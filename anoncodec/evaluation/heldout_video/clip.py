"""The held-out clip: test-split faces gliding over a test scene, or a real video file.

May import numpy, opencv, :mod:`anoncodec.frames`, :mod:`anoncodec.data.composite` (paste,
degrade) and :mod:`anoncodec.errors`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.errors import DatasetError
from anoncodec.evaluation.heldout_video.faces import (
    LABEL_THRESHOLD,
    heads_of,
    heldout_faces,
    load_image,
)
from anoncodec.frames import open_source

__all__ = ["BACKGROUNDS", "FRAME_HW", "HEAD_PX", "Clip", "composite_clip", "face_path", "video_clip"]

# Test-split scenes (anoncodec/data/holdout.py) usable as the background.
BACKGROUNDS = {"basketball1": "basketball1.png", "messi5": "messi5.jpg"}
FRAME_HW = (480, 640)
HEAD_PX = (30.0, 160.0)


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


def _pick(parts: list[Any], n: int, rng: np.random.Generator) -> list[Any]:
    return [parts[i] for i in rng.permutation(len(parts))[:n]]


def _background(path: Path) -> np.ndarray:
    import cv2

    rgb = load_image(path)
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
    samples: str | Path,
    avatar_asset: str | Path,
) -> Clip:
    """The held-out composite clip (see ``benchmarks/heldout_video.py``).

    ``samples`` is the folder of the :data:`BACKGROUNDS` (``data/samples``);
    ``avatar_asset`` the committed test-split face (see :func:`heldout_faces`).
    """
    from anoncodec.data.composite import degrade, paste

    rng = np.random.default_rng(seed)
    avatar_parts, portrait_parts = heldout_faces(corpus, centerface, avatar_asset)
    # Up to one portrait (a real-photo head) among the avatars, when fetched.
    chosen = _pick(portrait_parts, 1 if faces > 1 else 0, rng)
    chosen += _pick(avatar_parts, faces - len(chosen), rng)
    # Too few faces (only the committed avatar): reuse them, in another lane and phase.
    chosen = [chosen[i % len(chosen)] for i in range(faces)]
    order = rng.permutation(faces)
    chosen = [chosen[i] for i in order]
    flips = [bool(i % 2) for i in range(faces)]
    phases = rng.uniform(0, 1, faces)
    base = _background(Path(samples) / BACKGROUNDS[background])
    bg_heads = heads_of(base, centerface)
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
    try:
        with open_source(path, max_frames=frames or None) as source:
            file_fps = source.native_fps
            images = [frame.frame_rgb for frame in source]
    except DatasetError as exc:
        raise DatasetError(f"--video {str(path)!r}: {exc}") from exc
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
        heads = [heads_of(f, centerface) for f in images]
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
