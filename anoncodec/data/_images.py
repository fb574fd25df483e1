"""Small image I/O helpers shared by the loaders and the dataset.

May import numpy, PIL and :mod:`anoncodec.errors`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from anoncodec.errors import DatasetError

logger = logging.getLogger(__name__)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only (no pixel decoding).

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: the file is not a readable image.
    """
    with Image.open(path) as im:
        width, height = im.size
    return height, width


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file into a uint8 ``[H, W, 3]`` RGB array.

    Raises:
        DatasetError: the file is missing or cannot be decoded.
    """
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read image {str(path)!r}: {exc}") from exc
