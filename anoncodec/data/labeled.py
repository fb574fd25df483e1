"""Images whose boxes are already known: composites and labeled real shots.

May import numpy, :mod:`anoncodec.errors` and the other :mod:`anoncodec.data` modules.
A ``labels.json`` (written by :mod:`anoncodec.data.composite`) holds::

    {"version": 1, "images": [{"id", "file", "split", "scene", "identities",
                               "height", "width", "heads": [[x1,y1,x2,y2]...],
                               "persons": [...], "kind"}, ...]}

``file`` is relative to the json's folder. The split is fixed per image (``train``,
``val``, ``test``): training takes ``train`` and validates on ``val``; ``test`` is never
loaded for training (see :func:`anoncodec.training.loop`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from anoncodec.data.sample import AnnotatedImage
from anoncodec.errors import DatasetError
from anoncodec.roi.boxes import clip_boxes

__all__ = ["load_labeled"]

_VERSION = 1


def load_labeled(path: str | Path, splits: tuple[str, ...] = ("train", "val")) -> list[AnnotatedImage]:
    """Items of ``labels.json`` whose split is in ``splits``.

    Raises:
        DatasetError: missing or malformed file, or a listed image that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"labels file {str(path)!r} does not exist; build it with make composites")
    try:
        payload = json.loads(path.read_text())
        if payload.get("version") != _VERSION:
            raise ValueError(f"version {payload.get('version')!r}, expected {_VERSION}")
        records = payload["images"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path} is not a labels file: {exc}") from exc
    items = []
    for rec in records:
        if rec["split"] not in splits:
            continue
        image = path.parent / rec["file"]
        if not image.is_file():
            raise DatasetError(f"{path}: image {str(image)!r} is missing; rebuild the composites")
        h, w = int(rec["height"]), int(rec["width"])
        items.append(AnnotatedImage(
            id=rec["id"], path=str(image),
            persons_xyxy=clip_boxes(np.asarray(rec["persons"], np.float32).reshape(-1, 4), h, w),
            heads_xyxy=clip_boxes(np.asarray(rec["heads"], np.float32).reshape(-1, 4), h, w),
            group=f"{rec['split']}:{rec['scene']}", split=rec["split"]))
    return items
