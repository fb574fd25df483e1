"""Head boxes: from face and person detections, and from a pose model's keypoints.

Every frame's head boxes (the regions the codec anonymizes) come from these rules, whether
the frame is footage being annotated, a composite or a demo image. May import numpy,
:mod:`anoncodec.errors`, :mod:`anoncodec.roi.boxes`, :mod:`anoncodec.detectors.heads` (the
keypoint and person-box rules, shared with the camera's guard) and, lazily,
:mod:`anoncodec.detectors.face`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anoncodec.detectors.heads import (
    NUM_FACE_KEYPOINTS,
    person_to_head_box,
    pose_head_boxes,
)
from anoncodec.errors import DatasetError
from anoncodec.roi.boxes import as_boxes, clip_boxes

__all__ = ["as_detections", "heads_from_detections", "person_to_head_box", "pose_head_boxes",
           "NUM_FACE_KEYPOINTS"]

# A face-derived head "belongs" to a person when its center lies in the person's top 30 %.
PERSON_TOP_REGION = 0.3


def heads_from_detections(
    faces: np.ndarray,
    persons: np.ndarray,
    image_hw: tuple[int, int],
    extra_heads: np.ndarray | None = None,
) -> np.ndarray:
    """Head boxes of one frame from face and person detections.

    Every face becomes a head box; every upright person (box at least as tall as wide)
    whose top region (top 30 % of its box) contains the center of none of those head boxes
    gets a head from :func:`person_to_head_box`. Lying persons (wider than tall) get none:
    their head may be at either end.

    Args:
        faces: float ``[K, 4|5]`` face boxes.
        persons: float ``[M, 4|5]`` person boxes.
        image_hw: ``(height, width)`` to clip to.
        extra_heads: float ``[L, 4]`` head boxes from elsewhere (a pose model's
            keypoints, :func:`anoncodec.data.heads.pose_head_boxes`); each one whose
            center lies in no face's head is added before the person-top rule.

    Returns:
        float32 ``[J, 4]`` head boxes, clipped, boxes under 1 pixel dropped.
    """
    from anoncodec.detectors.face import face_to_head_box

    face_heads = face_to_head_box(as_detections(faces)[:, :4])
    if extra_heads is not None and len(extra_heads):
        extra = as_boxes(np.asarray(extra_heads, np.float32)[:, :4])
        c = (extra[:, :2] + extra[:, 2:]) / 2
        covered = (
            (c[:, None, 0] >= face_heads[None, :, 0])
            & (c[:, None, 0] <= face_heads[None, :, 2])
            & (c[:, None, 1] >= face_heads[None, :, 1])
            & (c[:, None, 1] <= face_heads[None, :, 3])
        ).any(axis=1)
        face_heads = np.concatenate([face_heads, extra[~covered]], axis=0)
    p = as_detections(persons)[:, :4]
    centers = (face_heads[:, :2] + face_heads[:, 2:]) / 2
    top_y2 = p[:, 1] + PERSON_TOP_REGION * (p[:, 3] - p[:, 1])
    inside = (
        (centers[None, :, 0] >= p[:, None, 0])
        & (centers[None, :, 0] <= p[:, None, 2])
        & (centers[None, :, 1] >= p[:, None, 1])
        & (centers[None, :, 1] <= top_y2[:, None])
    )  # [M, K]
    upright = (p[:, 3] - p[:, 1]) >= (p[:, 2] - p[:, 0])
    without_face = upright & ~inside.any(axis=1)
    heads = np.concatenate([face_heads, person_to_head_box(p[without_face])], axis=0)
    return clip_boxes(heads, image_hw[0], image_hw[1])


def as_detections(dets: Any) -> np.ndarray:
    """Detector output -> float32 ``[K, 5]`` (a missing score column becomes 1)."""
    arr = np.asarray(dets, np.float32)
    if arr.size == 0:
        return np.zeros((0, 5), np.float32)
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise DatasetError(
            f"detector returned shape {arr.shape}; expected [K, 5] (xyxy, score)"
        )
    if arr.shape[1] == 4:
        arr = np.concatenate([arr, np.ones((arr.shape[0], 1), np.float32)], axis=1)
    return arr
