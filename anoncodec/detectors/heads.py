"""Head boxes from what a detector sees: COCO face keypoints, a person box, a pose model.

Numpy and :mod:`anoncodec.roi.boxes` only. These are the rules both the labels
(:mod:`anoncodec.data.heads`, :mod:`anoncodec.data.coco`) and the camera-side guard
(:mod:`anoncodec.edge.guard` with ``pose``) use, so a head means the same box in training,
evaluation and on the camera.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anoncodec.roi.boxes import as_boxes

__all__ = ["keypoints_to_head_box", "person_to_head_box", "pose_head_boxes", "NUM_KEYPOINTS",
           "NUM_FACE_KEYPOINTS"]

NUM_KEYPOINTS = 17  # COCO person keypoints (the pose model's output)
NUM_FACE_KEYPOINTS = 5  # nose, left eye, right eye, left ear, right ear

# Head derived from a person box (standing adults are ~7.5 heads tall; 0.15 leaves a margin
# for hair and box slack): head height = 0.15 x person height, head width = 0.8 x head
# height (at most the person width), centered horizontally, touching the person box top.
PERSON_HEAD_HEIGHT = 0.15
HEAD_WIDTH_PER_HEIGHT = 0.8


NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = range(5)
# Anthropometric ratios behind the head-box rule (adult heads, with hair):
HEAD_WIDTH_PER_EAR_SPAN = 1.2  # head width / ear-to-ear distance
HEAD_WIDTH_PER_EYE_SPAN = 2.4  # eye-to-eye distance is ~half the ear-to-ear distance
HEAD_WIDTH_PER_SPREAD = (
    1.6  # profile views: nose/eye-to-ear spread ~0.6 of the head's depth
)
HEAD_MIN_WIDTH_PER_SPREAD = 1.2  # the box always covers the keypoints with a margin
HEAD_ASPECT = 1.3  # head height / head width
HEAD_CENTER_ABOVE_EYES = 0.05  # box center above the eye line, in head heights


def keypoints_to_head_box(keypoints: Any) -> np.ndarray | None:
    """Head box from COCO face keypoints.

    Rule, with ``P`` the visible keypoints among nose, eyes, ears (at least 2 needed) and
    ``s`` the larger side of their bounding box:

    1. width ``W`` = 1.2 x ear-to-ear distance if both ears are visible, else 2.4 x
       eye-to-eye distance if both eyes are, else 1.6 x ``s`` (profile); at least 1.2 x ``s``;
    2. height ``H`` = 1.3 x ``W``;
    3. center x = middle of ``P``'s bounding box; center y = mean y of the visible eyes and
       ears (the eye line) minus 0.05 x ``H`` (slightly above the eyes, for the hair).

    Args:
        keypoints: COCO ``keypoints``: 51 numbers (17 x ``[x, y, v]``) or ``[17, 3]``.

    Returns:
        float32 ``[4]`` head box (xyxy, not clipped), or ``None`` with fewer than 2 visible
        face keypoints.
    """
    kp = np.asarray(keypoints, np.float32).reshape(-1, 3)
    if kp.shape[0] < 5:
        raise ValueError(f"expected 17 COCO keypoints, got {kp.shape[0]}")
    face = kp[:5]
    visible = face[:, 2] > 0
    if int(visible.sum()) < 2:
        return None
    pts = face[visible, :2]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    spread = float((hi - lo).max())

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(face[a, :2] - face[b, :2]))

    if visible[LEFT_EAR] and visible[RIGHT_EAR]:
        width = HEAD_WIDTH_PER_EAR_SPAN * dist(LEFT_EAR, RIGHT_EAR)
    elif visible[LEFT_EYE] and visible[RIGHT_EYE]:
        width = HEAD_WIDTH_PER_EYE_SPAN * dist(LEFT_EYE, RIGHT_EYE)
    else:
        width = HEAD_WIDTH_PER_SPREAD * spread
    width = max(width, HEAD_MIN_WIDTH_PER_SPREAD * spread)
    height = HEAD_ASPECT * width
    eye_line = visible.copy()
    eye_line[NOSE] = False  # two visible points always include an eye or an ear
    cx = float(lo[0] + hi[0]) / 2
    cy = float(face[eye_line, 1].mean()) - HEAD_CENTER_ABOVE_EYES * height
    return np.array(
        [cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], np.float32
    )


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


def pose_head_boxes(
    keypoints: np.ndarray,
    persons: np.ndarray,
    min_visibility: float = 0.5,
) -> np.ndarray:
    """One head box per person, from its face keypoints or else from its box.

    Rule, with ``P`` the face keypoints (nose, eyes, ears: COCO 0-4) whose visibility is
    at least ``min_visibility``:

    1. ``len(P) >= 2`` (frontal, profile, three-quarter, or a back view with both ears):
       :func:`keypoints_to_head_box` on ``P`` (width from the ear
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
