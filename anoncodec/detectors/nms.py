"""Greedy non-maximum suppression in numpy.

Numpy only (no torch, no opencv), so the serving code can reuse it as it is.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["box_iou", "nms"]

logger = logging.getLogger(__name__)


def box_iou(box_xyxy: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with many.

    Args:
        box_xyxy: float array ``[4]`` (x1, y1, x2, y2).
        boxes_xyxy: float array ``[K, 4]``.

    Returns:
        float32 array ``[K]`` in [0, 1]; 0 where the union is empty.
    """
    b = np.asarray(box_xyxy, np.float32)
    bs = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    iw = (np.minimum(b[2], bs[:, 2]) - np.maximum(b[0], bs[:, 0])).clip(0)
    ih = (np.minimum(b[3], bs[:, 3]) - np.maximum(b[1], bs[:, 1])).clip(0)
    inter = iw * ih
    area = max(float(b[2] - b[0]), 0.0) * max(float(b[3] - b[1]), 0.0)
    areas = (bs[:, 2] - bs[:, 0]).clip(0) * (bs[:, 3] - bs[:, 1]).clip(0)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.45,
    max_det: int = 300,
) -> np.ndarray:
    """Class-agnostic greedy NMS.

    Keeps the highest-scoring box, removes every remaining box whose IoU with it is
    larger than ``iou_threshold``, and repeats.

    Args:
        boxes_xyxy: float array ``[K, 4]`` (x1, y1, x2, y2).
        scores: float array ``[K]``.
        iou_threshold: boxes overlapping a kept box by more than this are suppressed.
        max_det: keep at most this many boxes.

    Returns:
        int64 array ``[N]`` of indices into ``boxes_xyxy``, by decreasing score.
    """
    boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if boxes.shape[0] != scores.shape[0]:
        raise ValueError(f"nms: {boxes.shape[0]} boxes but {scores.shape[0]} scores")
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0 and len(keep) < max_det:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[box_iou(boxes[i], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
