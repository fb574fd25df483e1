"""The test split of a ``labels.json``, loaded and resized with its boxes.

May import numpy, opencv, :mod:`anoncodec.data` and :mod:`anoncodec.errors`; no other
module of the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anoncodec.data import AnnotatedImage
from anoncodec.errors import ConfigError


@dataclass
class HeldoutImage:
    """One test image, resized to the benchmark's size, with its boxes scaled along.

    Attributes:
        id: the labels' image id.
        frame_rgb: uint8 ``[H, W, 3]``.
        heads_xyxy, persons_xyxy: float32 ``[K, 4]`` boxes in ``frame_rgb`` pixels.
        scale: ``frame_rgb`` size / size in the file (1.0: not resized).
    """

    id: str
    frame_rgb: np.ndarray
    heads_xyxy: np.ndarray
    persons_xyxy: np.ndarray
    scale: float = 1.0


def load_heldout(
    labels: str | Path, max_images: int = 0, split: str = "test"
) -> list[AnnotatedImage]:
    """The ``split`` images of ``labels`` (all, or ``max_images`` evenly spaced ones).

    Evenly spaced rather than the first ones, so that a short run still mixes the real
    photos and the composites the file lists one after the other.

    Raises:
        DatasetError: the labels file is missing or malformed (see ``load_labeled``).
        ConfigError: ``max_images`` is negative, or the split is empty.
    """
    from anoncodec.data.labeled import load_labeled

    if max_images < 0:
        raise ConfigError(f"max_images {max_images}; expected 0 (all) or a count")
    items = load_labeled(labels, splits=(split,))
    if not items:
        raise ConfigError(
            f"{labels} has no {split!r} image; build it with make composites"
        )
    if max_images and max_images < len(items):
        picks = np.unique(
            np.linspace(0, len(items) - 1, max_images).round().astype(int)
        )
        items = [items[i] for i in picks]
    return items


def resize_image(item: AnnotatedImage, max_side: int = 640) -> HeldoutImage:
    """Load ``item`` and shrink it (INTER_AREA) so its longer side is <= ``max_side``.

    Args:
        item: a labeled image.
        max_side: longest side in pixels; 0 keeps every image as it is.
    """
    import cv2

    from anoncodec.data._images import load_rgb

    frame = load_rgb(item.path)
    h, w = frame.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return HeldoutImage(item.id, frame, item.heads_xyxy, item.persons_xyxy)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    factors = np.array([size[0] / w, size[1] / h] * 2, np.float32)
    return HeldoutImage(
        item.id, small, item.heads_xyxy * factors, item.persons_xyxy * factors, scale
    )
