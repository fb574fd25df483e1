"""One composite scene: parts cut from labeled photos, pasted into a background, degraded.

May import numpy, opencv, :mod:`anoncodec.errors` and :mod:`anoncodec.data.corpus` /
:mod:`anoncodec.data.holdout` (file records and split names). Boxes follow every geometric
step exactly; pasted parts clip to the frame. :mod:`anoncodec.data.composite` builds whole
splits from these scenes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anoncodec.data.corpus import CorpusFile
from anoncodec.data.holdout import SPLITS
from anoncodec.errors import DatasetError

__all__ = [
    "AVATAR_HEAD",
    "Background",
    "CompositeConfig",
    "Part",
    "avatar_part",
    "compose_scene",
    "degrade",
    "label_boxes",
    "parts_from_labels",
    "paste",
]

#: head box of a fake-avatars face (FFHQ-aligned crop) as fractions of its side: x1 y1 x2 y2
AVATAR_HEAD = (0.14, 0.0, 0.86, 0.96)


@dataclass(frozen=True)
class CompositeConfig:
    """How many scenes of which kind, and how they are made.

    Args:
        scenes: composites per split (``{"train": n, "val": n, "test": n}``).
        size: ``(height, width)`` of a composite.
        head_px: range of pasted head heights in pixels (log-uniform).
        persons: range of pasted persons per scene.
        faces: range of pasted faces (no body) per scene.
        seed: everything is reproducible from it.
        real_shots: also write the split's real images (rescaled) with their labels.
    """

    scenes: dict[str, int] = field(default_factory=lambda: {"train": 600, "val": 40, "test": 60})
    size: tuple[int, int] = (480, 640)
    head_px: tuple[float, float] = (10.0, 400.0)
    persons: tuple[int, int] = (0, 5)
    faces: tuple[int, int] = (1, 4)
    seed: int = 0
    real_shots: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.head_px[0] <= self.head_px[1]:
            raise DatasetError(f"head_px={self.head_px}; expected 0 < min <= max")
        if set(self.scenes) - set(SPLITS):
            raise DatasetError(f"scenes keys {sorted(self.scenes)}; expected some of {SPLITS}")


@dataclass
class Part:
    """A cut-out to paste: pixels, a soft alpha, and its boxes in its own pixels.

    Attributes:
        rgb: uint8 ``[h, w, 3]``.
        alpha: float32 ``[h, w]`` in [0, 1].
        heads: float32 ``[J, 4]`` head boxes (``xyxy``); the first one sets the scale.
        persons: float32 ``[K, 4]`` person boxes (empty for a face-only part).
        identity / scene: provenance, for the split check.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    heads: np.ndarray
    persons: np.ndarray
    identity: str
    scene: str


@dataclass
class Background:
    rgb: np.ndarray
    heads: np.ndarray
    persons: np.ndarray
    identity: str
    scene: str


# -- geometry ---------------------------------------------------------------------------
def label_boxes(values: Any) -> np.ndarray:
    """A label's ``heads`` / ``persons`` list -> float32 ``[K, 4]`` (a score column dropped)."""
    arr = np.asarray(values, np.float32).reshape(-1, np.asarray(values).shape[-1] if len(values) else 4)
    return arr[:, :4].copy() if arr.size else np.zeros((0, 4), np.float32)


def _feather(h: int, w: int, ellipse: bool, edge: float = 0.12) -> np.ndarray:
    """Soft alpha: 1 inside, falling to 0 over ``edge`` of the size at the border."""
    yy = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    xx = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    if ellipse:
        r = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
    else:
        r = np.maximum(np.abs(yy)[:, None], np.abs(xx)[None, :])
    return np.clip((1 - r) / edge, 0, 1).astype(np.float32)


def _crop_part(rgb: np.ndarray, box: np.ndarray, heads: np.ndarray, persons: np.ndarray,
               margin: float, ellipse: bool, identity: str, scene: str) -> Part | None:
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    cx1, cy1 = int(max(0, math.floor(x1 - margin * bw))), int(max(0, math.floor(y1 - margin * bh)))
    cx2, cy2 = int(min(w, math.ceil(x2 + margin * bw))), int(min(h, math.ceil(y2 + margin * bh)))
    if cx2 - cx1 < 8 or cy2 - cy1 < 8:
        return None
    shift = np.array([cx1, cy1, cx1, cy1], np.float32)
    crop = np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2])
    return Part(crop, _feather(cy2 - cy1, cx2 - cx1, ellipse), heads - shift, persons - shift, identity, scene)


def _inside(inner: np.ndarray, outer: np.ndarray) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return bool(outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3])


def parts_from_labels(rgb: np.ndarray, label: dict[str, Any], file: CorpusFile) -> tuple[list[Part], list[Part]]:
    """Face parts (each head) and person parts (each person with its heads) of a photo."""
    heads = label_boxes(label["heads"])
    persons = label_boxes(label["persons"])
    faces_out: list[Part] = []
    for head in heads:
        part = _crop_part(rgb, head, head[None], np.zeros((0, 4), np.float32), 0.15, True,
                          file.identity, file.scene)
        if part is not None and head[3] - head[1] >= 24:
            faces_out.append(part)
    persons_out: list[Part] = []
    for person in persons:
        own = np.array([h for h in heads if _inside(h, person)], np.float32).reshape(-1, 4)
        if len(own) != 1 or person[3] - person[1] < 64:
            continue  # a person part needs exactly one head of its own to be scaled by
        part = _crop_part(rgb, person, own, person[None], 0.06, False, file.identity, file.scene)
        if part is not None:
            persons_out.append(part)
    return faces_out, persons_out


def avatar_part(rgb: np.ndarray, file: CorpusFile) -> Part:
    """A fake-avatars face with its fixed head box and an elliptical alpha over the head."""
    h, w = rgb.shape[:2]
    head = np.array([[AVATAR_HEAD[0] * w, AVATAR_HEAD[1] * h, AVATAR_HEAD[2] * w, AVATAR_HEAD[3] * h]],
                    np.float32)
    x1, y1, x2, y2 = (int(round(v)) for v in head[0])
    crop = np.ascontiguousarray(rgb[y1:y2, x1:x2])
    return Part(crop, _feather(y2 - y1, x2 - x1, True, edge=0.08),
                head - np.array([x1, y1, x1, y1], np.float32), np.zeros((0, 4), np.float32),
                file.identity, file.scene)


# -- pasting and degradation ------------------------------------------------------------
def paste(canvas: np.ndarray, part: Part, scale: float, x: float, y: float, flip: bool = False
          ) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``part`` resized by ``scale`` with its top-left at ``(x, y)`` (in place).

    Returns:
        ``(heads, persons)`` of the part in canvas pixels, clipped to the canvas (boxes
        that end up empty are dropped).
    """
    import cv2

    ph, pw = part.rgb.shape[:2]
    nw, nh = max(1, round(pw * scale)), max(1, round(ph * scale))
    sx, sy = nw / pw, nh / ph
    rgb = cv2.resize(part.rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    alpha = cv2.resize(part.alpha, (nw, nh), interpolation=cv2.INTER_LINEAR)
    heads, persons = part.heads.copy(), part.persons.copy()
    if flip:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        for b in (heads, persons):
            b[:, [0, 2]] = pw - b[:, [2, 0]]
    x0, y0 = int(round(x)), int(round(y))
    H, W = canvas.shape[:2]
    cx1, cy1, cx2, cy2 = max(0, x0), max(0, y0), min(W, x0 + nw), min(H, y0 + nh)
    if cx2 > cx1 and cy2 > cy1:
        a = alpha[cy1 - y0:cy2 - y0, cx1 - x0:cx2 - x0, None]
        src = rgb[cy1 - y0:cy2 - y0, cx1 - x0:cx2 - x0].astype(np.float32)
        dst = canvas[cy1:cy2, cx1:cx2].astype(np.float32)
        canvas[cy1:cy2, cx1:cx2] = np.clip(a * src + (1 - a) * dst + 0.5, 0, 255).astype(np.uint8)
    factor = np.array([sx, sy, sx, sy], np.float32)
    offset = np.array([x0, y0, x0, y0], np.float32)

    def place(b: np.ndarray) -> np.ndarray:
        b = b * factor + offset
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, W)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, H)
        keep = (b[:, 2] - b[:, 0] >= 1) & (b[:, 3] - b[:, 1] >= 1)
        return b[keep].astype(np.float32)

    return place(heads), place(persons)


def degrade(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera-like degradations: optional blur, low light, sensor noise, then JPEG."""
    import cv2

    out = rgb.astype(np.float32)
    if rng.random() < 0.4:
        sigma = rng.uniform(0.4, 1.6)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if rng.random() < 0.3:  # low light: darker, lifted blacks, warmer or cooler
        gain = rng.uniform(0.25, 0.7)
        tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
        out = out * gain * tint + rng.uniform(0, 12)
    if rng.random() < 0.6:
        out = out + rng.normal(0, rng.uniform(1.0, 8.0), out.shape).astype(np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        ok, enc = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 96))])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1])
    return out


def _background_view(bg: Background, size: tuple[int, int], rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random crop of ``bg`` resized to ``size`` (with its own boxes moved along)."""
    import cv2

    H, W = size
    bh, bw = bg.rgb.shape[:2]
    zoom = rng.uniform(0.6, 1.0)
    side_h = min(bh, bw * H / W) * zoom
    side_w = side_h * W / H
    x0 = rng.uniform(0, bw - side_w)
    y0 = rng.uniform(0, bh - side_h)
    crop = bg.rgb[int(y0):int(y0 + side_h), int(x0):int(x0 + side_w)]
    sx, sy = W / crop.shape[1], H / crop.shape[0]
    view = cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA)
    flip = bool(rng.random() < 0.5)
    moved = []
    for b in (bg.heads, bg.persons):
        b = (b - np.array([int(x0), int(y0)] * 2, np.float32)) * np.array([sx, sy, sx, sy], np.float32)
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, W)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, H)
        if flip:
            b[:, [0, 2]] = W - b[:, [2, 0]]
        moved.append(b[(b[:, 2] - b[:, 0] >= 1) & (b[:, 3] - b[:, 1] >= 1)])
    if flip:
        view = view[:, ::-1]
    return np.ascontiguousarray(view), moved[0], moved[1]


def compose_scene(background: Background, faces: Sequence[Part], persons: Sequence[Part],
                  config: CompositeConfig, rng: np.random.Generator) -> dict[str, Any]:
    """One composite: returns ``{"rgb", "heads", "persons", "parts"}`` (boxes ``[K, 4]``)."""
    H, W = config.size
    canvas, heads, people = _background_view(background, config.size, rng)
    all_heads, all_persons = [heads], [people]
    parts = [(background.identity, background.scene)]
    lo, hi = math.log(config.head_px[0]), math.log(config.head_px[1])
    n_persons = int(rng.integers(config.persons[0], config.persons[1] + 1)) if persons else 0
    n_faces = int(rng.integers(config.faces[0], config.faces[1] + 1)) if faces else 0
    # Persons first (far ones small), faces on top: sorted by size, small ones behind.
    chosen = [(persons[int(rng.integers(len(persons)))], True) for _ in range(n_persons)]
    chosen += [(faces[int(rng.integers(len(faces)))], False) for _ in range(n_faces)]
    # A standing person is ~7 heads tall: persons' heads stay under a quarter of the frame
    # (larger ones are close-ups, which the faces cover), so most bodies fit.
    person_hi = math.log(max(config.head_px[0], min(config.head_px[1], H / 4)))
    sizes = [math.exp(rng.uniform(lo, person_hi if is_person else hi)) for _, is_person in chosen]
    for (part, is_person), head_px in sorted(zip(chosen, sizes), key=lambda t: t[1]):
        ref = part.heads[0]
        scale = head_px / max(1.0, float(ref[3] - ref[1]))
        ph, pw = part.rgb.shape[0] * scale, part.rgb.shape[1] * scale
        if is_person:  # feet on the ground: the box bottom lands in the lower part of the frame
            y = rng.uniform(0.45 * H, 1.1 * H) - ph
        else:
            y = rng.uniform(-0.1 * ph, H - 0.9 * ph) if ph < H else rng.uniform(H - ph, 0)
        x = rng.uniform(-0.2 * pw, W - 0.8 * pw)
        h_boxes, p_boxes = paste(canvas, part, scale, x, y, flip=bool(rng.random() < 0.5))
        all_heads.append(h_boxes)
        all_persons.append(p_boxes)
        parts.append((part.identity, part.scene))
    rgb = degrade(canvas, rng)
    return {"rgb": rgb, "heads": np.concatenate(all_heads).reshape(-1, 4),
            "persons": np.concatenate(all_persons).reshape(-1, 4), "parts": parts}
