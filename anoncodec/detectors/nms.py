"""Greedy non-maximum suppression and one-to-one box matching in numpy.

Numpy only (no torch, no opencv), so the serving code can reuse it as it is.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["box_iou", "nms", "match_boxes"]

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


def match_boxes(reference: np.ndarray, candidates: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Greedy one-to-one matching of boxes at IoU >= ``iou``.

    Reference boxes are taken by decreasing score (the 5th column, when given; else in
    order); each takes the still unmatched candidate it overlaps most.

    Args:
        reference: float ``[K, 4|5]`` boxes (e.g. persons on the original).
        candidates: float ``[J, 4|5]`` boxes (e.g. persons on the output).
        iou: least IoU of a match.

    Returns:
        bool ``[K]``: which reference boxes are matched, in input order.
    """
    ref = np.asarray(reference, np.float32)
    ref = ref.reshape(ref.shape[0], -1) if ref.size else np.zeros((0, 4), np.float32)
    cand = np.asarray(candidates, np.float32)
    cand = cand.reshape(cand.shape[0], -1)[:, :4] if cand.size else np.zeros((0, 4))
    kept = np.zeros(len(ref), bool)
    free = np.ones(len(cand), bool)
    order = np.argsort(-ref[:, 4], kind="stable") if ref.shape[1] > 4 else range(len(ref))
    for i in order:
        if not free.any():
            break
        overlaps = np.where(free, box_iou(ref[i, :4], cand), -1.0)
        j = int(np.argmax(overlaps))
        if overlaps[j] >= iou:
            kept[i], free[j] = True, False
    return kept
