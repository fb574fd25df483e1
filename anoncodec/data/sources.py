"""One entry point that loads any configured data source.

May import :mod:`anoncodec.config`, :mod:`anoncodec.errors` and the loaders of this package.
"""

from __future__ import annotations

import logging
from pathlib import Path

from anoncodec.config import DataSourceConfig
from anoncodec.data.coco import load_coco
from anoncodec.data.crowdhuman import load_crowdhuman
from anoncodec.data.footage import load_footage
from anoncodec.data.labeled import load_labeled
from anoncodec.data.sample import AnnotatedImage
from anoncodec.errors import ConfigError

__all__ = ["load_source"]

logger = logging.getLogger(__name__)


def load_source(
    src: DataSourceConfig, cache_dir: Path | str | None = None
) -> list[AnnotatedImage]:
    """Load the annotated images of one data source, dispatching on ``src.kind``.

    Args:
        src: the source (``"crowdhuman"``, ``"coco"`` or ``"footage"``).
        cache_dir: footage annotation cache root (default: see
            :func:`~anoncodec.data.footage.default_cache_dir`); ignored by other kinds.

    Raises:
        ConfigError: unknown kind.
        DatasetError: the source cannot be read.
    """
    if src.kind == "crowdhuman":
        return load_crowdhuman(src)
    if src.kind == "coco":
        return load_coco(src)
    if src.kind == "footage":
        return load_footage(src, cache_dir=cache_dir)
    if src.kind == "labeled":
        return load_labeled(src.path)
    raise ConfigError(
        f"data source kind={src.kind!r}; expected crowdhuman, coco, footage or labeled"
    )
