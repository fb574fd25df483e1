"""Axis-aligned boxes in pixel coordinates, ``xyxy`` (x1, y1, x2, y2), as numpy arrays.

Numpy only. A box array is float32 of shape ``[K, 4]``; ``x2``/``y2`` are exclusive edges,
so a box ``(0, 0, 2, 2)`` covers the 2x2 pixels at the top left.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_boxes", "xywh_to_xyxy", "clip_boxes", "scale_boxes"]


def as_boxes(boxes: object) -> np.ndarray:
    """Return ``boxes`` as a float32 ``[K, 4]`` array (an empty input gives ``[0, 4]``)."""
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 4), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape [K, 4], got {arr.shape}")
    return arr


def xywh_to_xyxy(boxes: object) -> np.ndarray:
    """Convert ``[x, y, w, h]`` boxes (CrowdHuman, COCO) to ``xyxy``."""
    b = as_boxes(boxes).copy()
    b[:, 2:] += b[:, :2]
    return b


def clip_boxes(boxes: object, height: int, width: int, min_size: float = 1.0) -> np.ndarray:
    """Clip boxes to the image and drop those narrower or lower than ``min_size`` pixels."""
    b = as_boxes(boxes).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    keep = ((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size)
    return b[keep]


def scale_boxes(boxes: object, sx: float, sy: float) -> np.ndarray:
    """Scale box coordinates (after resizing an image by ``sx`` horizontally, ``sy`` vertically)."""
    return as_boxes(boxes) * np.array([sx, sy, sx, sy], np.float32)

