"""Head boxes of persons from a pose model's keypoints, so heads turned away count too.

May import numpy and the other :mod:`anoncodec.data` modules (the COCO keypoint rule and
the person-top rule of footage).
"""

from __future__ import annotations

import numpy as np

from anoncodec.data.coco import keypoints_to_head_box
from anoncodec.data.footage import person_to_head_box

__all__ = ["pose_head_boxes", "NUM_FACE_KEYPOINTS"]

NUM_KEYPOINTS = 17  # COCO person keypoints (the pose model's output)
NUM_FACE_KEYPOINTS = 5  # nose, left eye, right eye, left ear, right ear


def pose_head_boxes(
    keypoints: np.ndarray,
    persons: np.ndarray,
    min_visibility: float = 0.5,
) -> np.ndarray:
    """One head box per person, from its face keypoints or else from its box.

    Rule, with ``P`` the face keypoints (nose, eyes, ears: COCO 0-4) whose visibility is
    at least ``min_visibility``:

    1. ``len(P) >= 2`` (frontal, profile, three-quarter, or a back view with both ears):
       :func:`anoncodec.data.coco.keypoints_to_head_box` on ``P`` (width from the ear
       span, else the eye span, else the keypoint spread; height 1.3 x width; centered a
       little above the eye/ear line).
    2. ``len(P) == 1`` (e.g. a head turned away with one ear showing): the person-box
       head of rule 3, moved so that it is centered horizontally on that keypoint (and
       vertically too when the keypoint lies outside it).
    3. ``len(P) == 0`` (back view, no face keypoint):
       :func:`anoncodec.data.footage.person_to_head_box`: height 0.15 x person height,
       width 0.8 x that (at most the person width), centered, at the top of the box.

    Boxes are not clipped to the frame.

    Args:
        keypoints: float ``[K, 17, 3]`` (x, y in frame pixels, visibility in [0, 1]), as
            returned by :meth:`anoncodec.detectors.YoloPoseDetector.detect_pose`.
        persons: float ``[K, 4]`` or ``[K, 5]`` person boxes (xyxy pixels; a score
            column is ignored), one per keypoint set.
        min_visibility: a keypoint counts when its visibility is at least this.

    Returns:
        float32 ``[K, 4]`` head boxes (xyxy, frame pixels).
    """
    kp = np.asarray(keypoints, np.float32)
    if kp.size == 0:
        kp = kp.reshape(0, NUM_KEYPOINTS, 3)
    if kp.ndim != 3 or kp.shape[1] < NUM_FACE_KEYPOINTS or kp.shape[2] != 3:
        raise ValueError(f"keypoints must be [K, 17, 3], got shape {kp.shape}")
    p = np.asarray(persons, np.float32)
    p = p.reshape(0, 4) if p.size == 0 else p
    if p.ndim != 2 or p.shape[1] not in (4, 5) or p.shape[0] != kp.shape[0]:
        raise ValueError(
            f"persons must be [K, 4] or [K, 5] with K = {kp.shape[0]} (one per "
            f"keypoint set), got shape {p.shape}"
        )
    heads = person_to_head_box(p[:, :4]).reshape(-1, 4)
    for k in range(kp.shape[0]):
        face = kp[k, :NUM_FACE_KEYPOINTS].copy()
        visible = face[:, 2] >= min_visibility
        face[:, 2] = visible.astype(np.float32)
        count = int(visible.sum())
        if count >= 2:
            heads[k] = keypoints_to_head_box(face)
        elif count == 1:
            x, y = face[visible, :2][0]
            x1, y1, x2, y2 = heads[k]
            dx = x - (x1 + x2) / 2
            dy = y - (y1 + y2) / 2 if not y1 <= y <= y2 else 0.0
            heads[k] = [x1 + dx, y1 + dy, x2 + dx, y2 + dy]
    return heads.astype(np.float32)
