"""CrowdHuman annotations (``.odgt``) -> :class:`~anoncodec.data.sample.AnnotatedImage`.

May import numpy, PIL, :mod:`anoncodec.errors`, :mod:`anoncodec.config`,
:mod:`anoncodec.roi.boxes`.

An ``.odgt`` file holds one JSON object per line::

    {"ID": "273271,c9db000d5146c15", "gtboxes": [
        {"tag": "person", "fbox": [x, y, w, h], "vbox": [...], "hbox": [...],
         "extra": {"ignore": 0}, "head_attr": {"ignore": 0, "occ": 0, "unsure": 0}},
        {"tag": "mask", "fbox": [...], ...}]}

Rules:

- only ``tag == "person"`` entries are used (``"mask"`` marks crowd/ignore regions);
- the person box is ``fbox`` (full extent, may leave the image) or ``vbox`` (visible part)
  per ``DataSourceConfig.person_box``;
- ``skip_ignored`` drops the *person box* of entries with ``extra.ignore == 1``; their head
  box is still kept (a face on a poster or a reflection is a face too: anonymizing it costs
  nothing and is the conservative choice);
- ``skip_unsure_heads`` drops head boxes whose ``head_attr`` has ``ignore == 1`` or
  ``unsure == 1``;
- boxes are clipped to the image; boxes under 1 pixel after clipping are dropped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.config import DataSourceConfig
from anoncodec.data._images import image_size
from anoncodec.data.sample import AnnotatedImage
from anoncodec.errors import DatasetError
from anoncodec.roi.boxes import clip_boxes, xywh_to_xyxy

__all__ = ["load_crowdhuman", "parse_odgt_record"]

logger = logging.getLogger(__name__)


def _flag(attrs: Any, key: str) -> bool:
    return isinstance(attrs, dict) and int(attrs.get(key, 0) or 0) == 1


def parse_odgt_record(
    record: dict[str, Any], src: DataSourceConfig
) -> tuple[str, np.ndarray, np.ndarray]:
    """Extract unclipped person and head boxes from one decoded ``.odgt`` line.

    Args:
        record: the JSON object of one line.
        src: source config (``person_box``, ``skip_ignored``, ``skip_unsure_heads``).

    Returns:
        ``(ID, persons_xyxy, heads_xyxy)``, float32 ``[K, 4]`` and ``[J, 4]``, not clipped.

    Raises:
        KeyError, TypeError, ValueError: malformed record (the caller adds file and line).
    """
    image_id = record["ID"]
    if not isinstance(image_id, str) or not image_id:
        raise ValueError(f"'ID' must be a non-empty string, got {image_id!r}")
    box_key = "fbox" if src.person_box == "full" else "vbox"
    persons: list[list[float]] = []
    heads: list[list[float]] = []
    for gt in record.get("gtboxes", []):
        if gt.get("tag") != "person":
            continue
        if not (src.skip_ignored and _flag(gt.get("extra"), "ignore")):
            persons.append([float(v) for v in gt[box_key]])
        hbox = gt.get("hbox")
        if hbox is None:
            continue
        attrs = gt.get("head_attr")
        if src.skip_unsure_heads and (_flag(attrs, "ignore") or _flag(attrs, "unsure")):
            continue
        heads.append([float(v) for v in hbox])
    for name, boxes in (("person", persons), ("head", heads)):
        if any(len(b) != 4 for b in boxes):
            raise ValueError(f"{name} boxes must have 4 numbers [x, y, w, h]")
    return image_id, xywh_to_xyxy(persons), xywh_to_xyxy(heads)


def load_crowdhuman(src: DataSourceConfig) -> list[AnnotatedImage]:
    """Load a CrowdHuman ``.odgt`` annotation file.

    Args:
        src: ``kind="crowdhuman"``; ``path`` is the ``.odgt`` file, ``images`` the image
            folder (default ``<odgt folder>/Images``), images named ``<ID>.jpg``.

    Returns:
        One :class:`AnnotatedImage` per line (``group = id``, ``order = 0``), in file order.

    Raises:
        DatasetError: missing file or image, or a malformed line (message names file:line).
    """
    odgt = Path(src.path)
    if not odgt.is_file():
        raise DatasetError(f"CrowdHuman annotation file {str(odgt)!r} does not exist")
    images = Path(src.images) if src.images else odgt.parent / "Images"
    items: list[AnnotatedImage] = []
    with odgt.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{odgt}:{lineno}"
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(
                        f"expected a JSON object, got {type(record).__name__}"
                    )
                image_id, persons, heads = parse_odgt_record(record, src)
            except (KeyError, TypeError, ValueError) as exc:
                detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
                raise DatasetError(
                    f"{where}: malformed CrowdHuman record: {detail}"
                ) from exc
            image_path = images / f"{image_id}.jpg"
            try:
                height, width = image_size(image_path)
            except FileNotFoundError as exc:
                raise DatasetError(
                    f"{where}: image {str(image_path)!r} not found; set 'images' to the "
                    "folder holding <ID>.jpg"
                ) from exc
            except OSError as exc:
                raise DatasetError(
                    f"{where}: cannot read image {str(image_path)!r}: {exc}"
                ) from exc
            items.append(
                AnnotatedImage(
                    id=image_id,
                    path=str(image_path),
                    persons_xyxy=clip_boxes(persons, height, width),
                    heads_xyxy=clip_boxes(heads, height, width),
                    group=image_id,
                    order=0,
                )
            )
    logger.info("CrowdHuman %s: %d images", odgt, len(items))
    return items
