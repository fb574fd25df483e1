"""Head boxes: from face and person detections, and from a pose model's keypoints.

Every frame's head boxes (the regions the codec anonymizes) come from these rules, whether
the frame is footage being annotated, a composite or a demo image. May import numpy,
:mod:`anoncodec.errors`, :mod:`anoncodec.roi.boxes`, :mod:`anoncodec.data.coco` (the COCO
keypoint rule) and, lazily, :mod:`anoncodec.detectors.face`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anoncodec.data.coco import keypoints_to_head_box
from anoncodec.errors import DatasetError
from anoncodec.roi.boxes import as_boxes, clip_boxes

__all__ = ["as_detections", "heads_from_detections", "person_to_head_box", "pose_head_boxes",
           "NUM_FACE_KEYPOINTS"]

NUM_KEYPOINTS = 17  # COCO person keypoints (the pose model's output)
NUM_FACE_KEYPOINTS = 5  # nose, left eye, right eye, left ear, right ear

# Head derived from a person box (standing adults are ~7.5 heads tall; 0.15 leaves a margin
# for hair and box slack): head height = 0.15 x person height, head width = 0.8 x head
# height (at most the person width), centered horizontally, touching the person box top.
PERSON_HEAD_HEIGHT = 0.15
HEAD_WIDTH_PER_HEIGHT = 0.8
# A face-derived head "belongs" to a person when its center lies in the person's top 30 %.
PERSON_TOP_REGION = 0.3


def person_to_head_box(
    persons_xyxy: np.ndarray,
    head_height: float = PERSON_HEAD_HEIGHT,
    width_per_height: float = HEAD_WIDTH_PER_HEIGHT,
) -> np.ndarray:
    """Guess head boxes from the top of person boxes.

    For a person box of width ``pw`` and height ``ph``: head height ``hh = 0.15 * ph``,
    head width ``min(pw, 0.8 * hh)``, centered on the person, top edge on the person's top.

    Args:
        persons_xyxy: float ``[K, 4]`` or ``[K, 5]`` (a score column is ignored).
        head_height: head height as a fraction of the person height.
        width_per_height: head width / head height.

    Returns:
        float32 ``[K, 4]`` head boxes.
    """
    p = np.asarray(persons_xyxy, np.float32)
    p = as_boxes(p[:, :4] if p.ndim == 2 and p.shape[1] >= 4 else p)
    pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    hh = head_height * ph
    hw = np.minimum(pw, width_per_height * hh)
    cx = (p[:, 0] + p[:, 2]) / 2
    return np.stack([cx - hw / 2, p[:, 1], cx + hw / 2, p[:, 1] + hh], axis=1).astype(
        np.float32
    )


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
       :func:`person_to_head_box`: height 0.15 x person height,
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
