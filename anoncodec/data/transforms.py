"""Zoomed square crops of images and their boxes, as pure numpy functions.

May import numpy, opencv and :mod:`anoncodec.roi.boxes`; no torch (the dataset wraps these).

A crop is a square window of ``side`` source pixels at ``(x0, y0)`` (integers, always inside
the image), resized to ``out_size`` and optionally mirrored. A point ``x`` of the source maps
to ``(x - x0) * out_size / side`` (then ``out_size - u`` if flipped), the same continuous
pixel-edge convention as the boxes (``x2``/``y2`` exclusive) and as ``cv2.resize``.

Training crops (:func:`sample_crop_params`): ``side = crop_size * scale`` with ``scale``
log-uniform in ``[scale_min, scale_max]``; ``scale < 1`` zooms in (small heads get larger).
If the image is smaller than ``side``, ``side`` shrinks to the image's shorter side (the crop
zooms in further) instead of padding, so crops never contain padding. With probability
``head_bias`` (and if the image has heads) the window is placed so that it contains a
randomly chosen head (fully, when it fits), otherwise uniformly.

Validation crops (:func:`center_crop_params`): deterministic, at native resolution
(``side = crop_size``, or the shorter image side if smaller) and centered on the median
center of the head boxes (the image center when there are none), shifted to stay inside the
image, never flipped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from anoncodec.roi.boxes import as_boxes, clip_boxes

__all__ = [
    "CropParams",
    "sample_crop_params",
    "center_crop_params",
    "apply_crop",
    "transform_boxes",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropParams:
    """A square crop window in source pixels, its output size and mirroring.

    Attributes:
        x0, y0: top-left corner of the window (integers, inside the image).
        side: window side in source pixels (``x0 + side <= W``, ``y0 + side <= H``).
        out_size: side of the output crop in pixels.
        flip: mirror horizontally after resizing.
    """

    x0: int
    y0: int
    side: int
    out_size: int
    flip: bool = False

    @property
    def zoom(self) -> float:
        """Output pixels per source pixel (> 1 magnifies)."""
        return self.out_size / self.side


def _place(
    lo: float, hi: float, extent: int, side: int, rng: np.random.Generator
) -> int:
    """Start of a window of ``side`` within ``[0, extent]`` containing ``[lo, hi]`` if it can."""
    max_start = extent - side
    if hi - lo <= side:
        a, b = math.ceil(hi) - side, math.floor(lo)
    else:  # object larger than the window: keep its center inside
        c = (lo + hi) / 2
        a, b = math.ceil(c) - side, math.floor(c)
    a, b = max(a, 0), min(b, max_start)
    if a > b:
        return int(min(max(round((lo + hi - side) / 2), 0), max_start))
    return int(rng.integers(a, b + 1))


def sample_crop_params(
    rng: np.random.Generator,
    image_hw: tuple[int, int],
    heads_xyxy: np.ndarray,
    crop_size: int,
    scale_min: float,
    scale_max: float,
    head_bias: float = 0.5,
    flip_prob: float = 0.5,
) -> CropParams:
    """Draw a random training crop.

    Args:
        rng: numpy random generator.
        image_hw: ``(height, width)`` of the source image.
        heads_xyxy: float ``[J, 4]`` head boxes in source pixels (for the head bias).
        crop_size: output side.
        scale_min, scale_max: range of ``side / crop_size`` (log-uniform).
        head_bias: probability of placing the window around a random head.
        flip_prob: probability of a horizontal flip.

    Returns:
        :class:`CropParams`.
    """
    height, width = image_hw
    if not 0 < scale_min <= scale_max:
        raise ValueError(
            f"scale_min={scale_min}, scale_max={scale_max}; expected 0 < min <= max"
        )
    scale = math.exp(rng.uniform(math.log(scale_min), math.log(scale_max)))
    side = max(1, min(int(round(crop_size * scale)), height, width))
    heads = as_boxes(heads_xyxy)
    if heads.shape[0] and rng.random() < head_bias:
        h = heads[int(rng.integers(heads.shape[0]))]
        x0 = _place(float(h[0]), float(h[2]), width, side, rng)
        y0 = _place(float(h[1]), float(h[3]), height, side, rng)
    else:
        x0 = int(rng.integers(0, width - side + 1))
        y0 = int(rng.integers(0, height - side + 1))
    return CropParams(x0, y0, side, crop_size, bool(rng.random() < flip_prob))


def center_crop_params(
    image_hw: tuple[int, int], heads_xyxy: np.ndarray, crop_size: int
) -> CropParams:
    """Deterministic validation crop at native resolution, centered on the heads.

    Args:
        image_hw: ``(height, width)`` of the source image.
        heads_xyxy: float ``[J, 4]`` head boxes (the crop is centered on the median head
            center; on the image center if there are none).
        crop_size: output side.

    Returns:
        :class:`CropParams` with ``flip=False``.
    """
    height, width = image_hw
    side = max(1, min(crop_size, height, width))
    heads = as_boxes(heads_xyxy)
    if heads.shape[0]:
        cx, cy = np.median((heads[:, :2] + heads[:, 2:]) / 2, axis=0)
    else:
        cx, cy = width / 2, height / 2
    x0 = int(min(max(round(cx - side / 2), 0), width - side))
    y0 = int(min(max(round(cy - side / 2), 0), height - side))
    return CropParams(x0, y0, side, crop_size, False)


def apply_crop(image: np.ndarray, params: CropParams) -> np.ndarray:
    """Cut, resize and mirror an image.

    Args:
        image: uint8 ``[H, W, 3]`` (or ``[H, W]``).
        params: the crop.

    Returns:
        uint8 ``[out_size, out_size, 3]`` (area interpolation when shrinking, bilinear
        when magnifying).
    """
    import cv2

    p = params
    height, width = image.shape[:2]
    if p.x0 < 0 or p.y0 < 0 or p.x0 + p.side > width or p.y0 + p.side > height:
        raise ValueError(f"crop {p} leaves the {width}x{height} image")
    window = image[p.y0 : p.y0 + p.side, p.x0 : p.x0 + p.side]
    if p.side != p.out_size:
        interp = cv2.INTER_AREA if p.side > p.out_size else cv2.INTER_LINEAR
        window = cv2.resize(window, (p.out_size, p.out_size), interpolation=interp)
    if p.flip:
        window = window[:, ::-1]
    return np.ascontiguousarray(window)


def transform_boxes(
    boxes_xyxy: np.ndarray, params: CropParams, min_size: float = 2.0
) -> np.ndarray:
    """Map boxes into a crop, clip them and drop those that became too small.

    Args:
        boxes_xyxy: float ``[K, 4]`` boxes in source pixels.
        params: the crop.
        min_size: drop boxes narrower or lower than this many *output* pixels after clipping.

    Returns:
        float32 ``[K', 4]`` boxes in crop pixels, inside ``[0, out_size]``.
    """
    p = params
    b = (
        as_boxes(boxes_xyxy) - np.array([p.x0, p.y0, p.x0, p.y0], np.float32)
    ) * np.float32(p.zoom)
    if p.flip:
        b = np.stack(
            [p.out_size - b[:, 2], b[:, 1], p.out_size - b[:, 0], b[:, 3]], axis=1
        )
    return clip_boxes(b, p.out_size, p.out_size, min_size=min_size).astype(np.float32)
