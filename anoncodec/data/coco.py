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
from anoncodec.detectors.heads import keypoints_to_head_box
from anoncodec.errors import DatasetError
from anoncodec.roi.boxes import clip_boxes, xywh_to_xyxy

__all__ = ["load_coco", "keypoints_to_head_box"]

logger = logging.getLogger(__name__)

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
