"""COCO person keypoints -> :class:`~anoncodec.data.sample.AnnotatedImage`.

May import numpy, PIL, :mod:`anoncodec.errors`, :mod:`anoncodec.config`,
:mod:`anoncodec.roi.boxes`.

COCO has person boxes but no head boxes, so heads are derived from the five face keypoints
(nose 0, left eye 1, right eye 2, left ear 3, right ear 4; a keypoint counts when its
visibility flag ``v > 0``). See :func:`keypoints_to_head_box` for the rule.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.config import DataSourceConfig
from anoncodec.data._images import image_size
from anoncodec.data.sample import AnnotatedImage
from anoncodec.errors import DatasetError
from anoncodec.roi.boxes import clip_boxes, xywh_to_xyxy

__all__ = ["load_coco", "keypoints_to_head_box"]

logger = logging.getLogger(__name__)

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


def _person_category(data: dict[str, Any]) -> int:
    for cat in data.get("categories", []) or []:
        if isinstance(cat, dict) and cat.get("name") == "person":
            return int(cat["id"])
    return 1


def load_coco(
    src: DataSourceConfig, only_with_persons: bool = True
) -> list[AnnotatedImage]:
    """Load a COCO person keypoints file.

    Args:
        src: ``kind="coco"``; ``path`` is the json, ``images`` the image folder (default
            ``<json folder>/images``), images at ``<images>/<file_name>``. ``skip_ignored``
            drops ``iscrowd`` annotations (person and head).
        only_with_persons: skip images without any (kept) person annotation.

    Returns:
        One :class:`AnnotatedImage` per image (``id = group = str(image id)``), sorted by id.

    Raises:
        DatasetError: missing/unparsable json, malformed entries, missing images.
    """
    path = Path(src.path)
    if not path.is_file():
        raise DatasetError(f"COCO annotation file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot parse COCO json {str(path)!r}: {exc}") from exc
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DatasetError(
            f"{path}: expected a COCO json with 'images' and 'annotations'"
        )
    images_dir = Path(src.images) if src.images else path.parent / "images"
    person_cat = _person_category(data)

    persons: dict[int, list[np.ndarray]] = defaultdict(list)
    heads: dict[int, list[np.ndarray]] = defaultdict(list)
    for k, ann in enumerate(data["annotations"]):
        try:
            if int(ann.get("category_id", person_cat)) != person_cat:
                continue
            if src.skip_ignored and int(ann.get("iscrowd", 0)):
                continue
            image_id = int(ann["image_id"])
            persons[image_id].append(xywh_to_xyxy([ann["bbox"]])[0])
            keypoints = ann.get("keypoints")
            head = keypoints_to_head_box(keypoints) if keypoints else None
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: malformed annotations[{k}]: {exc!r}") from exc
        if head is not None:
            heads[image_id].append(head)

    items: list[AnnotatedImage] = []
    for k, info in enumerate(data["images"]):
        try:
            image_id = int(info["id"])
            file_name = str(info["file_name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: malformed images[{k}]: {exc!r}") from exc
        if only_with_persons and not persons.get(image_id):
            continue
        image_path = images_dir / file_name
        if not image_path.is_file():
            raise DatasetError(
                f"{path}: image {str(image_path)!r} (images[{k}]) not found; set 'images' "
                "to the folder holding the COCO file_name entries"
            )
        height, width = info.get("height"), info.get("width")
        if not height or not width:
            height, width = image_size(image_path)
        items.append(
            AnnotatedImage(
                id=str(image_id),
                path=str(image_path),
                persons_xyxy=clip_boxes(
                    persons.get(image_id, []), int(height), int(width)
                ),
                heads_xyxy=clip_boxes(heads.get(image_id, []), int(height), int(width)),
                group=str(image_id),
                order=0,
            )
        )
    items.sort(key=lambda it: int(it.id))
    logger.info("COCO %s: %d images with persons", path, len(items))
    return items
