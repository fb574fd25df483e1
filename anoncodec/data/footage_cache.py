"""The footage annotation cache: its folder, its key and reading it back as images.

May import numpy, :mod:`anoncodec.config`, :mod:`anoncodec.errors`, :mod:`anoncodec.frames`
and :mod:`anoncodec.roi.boxes`. Layout (written by :func:`anoncodec.data.footage.load_footage`)::

    <cache root>/<source name>-<key>/
        annotations.json          # version, source info, per frame: file, faces, persons, heads
        frame_000000.png ...      # video frames only; image sources are referenced in place
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.config import DataSourceConfig
from anoncodec.data.sample import AnnotatedImage
from anoncodec.frames import list_images
from anoncodec.roi.boxes import clip_boxes

__all__ = ["ANNOTATIONS", "ANNOTATOR_VERSION", "DEFAULT_FPS", "GROUP_SECONDS", "cache_key",
           "default_cache_dir", "read_cache"]

logger = logging.getLogger(__name__)

# Bump when the head heuristics, the stored fields or the frame format change.
ANNOTATOR_VERSION = "footage-annotations-v1"
# Videos are grouped into blocks of this many seconds of source time (the split unit).
GROUP_SECONDS = 2.0
DEFAULT_FPS = 25.0
ANNOTATIONS = "annotations.json"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/anoncodec/footage``, else ``~/.cache/anoncodec/footage``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anoncodec" / "footage"


def _stat_key(p: Path) -> list[Any]:
    st = p.stat()
    return [p.name, st.st_size, st.st_mtime_ns]


def cache_key(src: DataSourceConfig, path: Path, kind: str, detectors: dict[str, Any]) -> str:
    """Hash of the resolved source path, its size and mtime (every image's for a folder),
    the frame selection, the detectors and thresholds and :data:`ANNOTATOR_VERSION`."""
    if kind == "folder":
        fingerprint: Any = [_stat_key(p) for p in list_images(path)]
    else:
        fingerprint = _stat_key(path)
    payload = {
        "path": str(path),
        "kind": kind,
        "files": fingerprint,
        "frame_stride": src.frame_stride,
        "max_frames": src.max_frames,
        "annotator": ANNOTATOR_VERSION,
        **detectors,
    }
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def read_cache(folder: Path) -> list[AnnotatedImage] | None:
    """Items from a complete cache folder, or ``None`` (absent or unusable: re-annotate)."""
    ann = folder / ANNOTATIONS
    if not ann.is_file():
        return None
    try:
        meta = json.loads(ann.read_text())
        if meta.get("version") != ANNOTATOR_VERSION:
            raise ValueError(
                f"version {meta.get('version')!r} != {ANNOTATOR_VERSION!r}"
            )
        source = Path(meta["source"])
        is_video = meta["kind"] == "video"
        block = max(float(meta.get("fps") or DEFAULT_FPS), 1e-3) * GROUP_SECONDS
        items = []
        for rec in meta["frames"]:
            image = folder / rec["file"] if is_video else Path(rec["path"])
            if not image.is_file():
                raise FileNotFoundError(str(image))
            persons = np.asarray(rec["persons"], np.float32).reshape(-1, 5)[:, :4]
            if is_video:
                group = f"{source.name}:t{int(rec['index'] // block):05d}"
                order, sequence = int(rec["index"]), source.name
            else:
                group, order, sequence = rec["id"], 0, ""
            items.append(
                AnnotatedImage(
                    id=rec["id"],
                    path=str(image),
                    persons_xyxy=clip_boxes(persons, rec["height"], rec["width"]),
                    heads_xyxy=np.asarray(rec["heads"], np.float32).reshape(-1, 4),
                    group=group,
                    order=order,
                    sequence=sequence,
                )
            )
        return items
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("footage cache %s unusable (%s); annotating again", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return None
