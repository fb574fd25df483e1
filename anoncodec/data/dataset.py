"""PyTorch dataset of zoomed ROI crops for training the codec.

May import numpy, PIL, opencv, torch and the other :mod:`anoncodec.data` modules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from anoncodec.data._images import load_rgb
from anoncodec.data.sample import AnnotatedImage
from anoncodec.data.transforms import (
    apply_crop,
    center_crop_params,
    sample_crop_params,
    transform_boxes,
)

__all__ = ["RoiCropDataset", "collate_roi"]

logger = logging.getLogger(__name__)

RoiSample = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class RoiCropDataset(Dataset):
    """Square crops of annotated images with their person and head boxes.

    Training (``train=True``): a random zoomed crop per access (see
    :func:`~anoncodec.data.transforms.sample_crop_params`): side ``crop_size * scale``,
    ``scale`` log-uniform in ``[scale_min, scale_max]``, placed around a random head half of
    the time, resized to ``crop_size``, mirrored with probability 0.5.
    Validation (``train=False``): a deterministic native-resolution crop centered on the
    heads (:func:`~anoncodec.data.transforms.center_crop_params`); same output every time.

    Randomness: each access seeds a numpy generator from ``(seed, index, a draw of torch's
    RNG)``; so results follow ``torch.manual_seed``, differ between epochs and between
    DataLoader workers (which torch seeds differently), and are reproducible.

    Args:
        items: annotated images.
        crop_size: output side in pixels.
        scale_min, scale_max: zoom range (``side / crop_size``).
        train: random training crops, else deterministic validation crops.
        seed: mixed into every access's generator.
        head_bias: probability of centering a training crop around a head.
        min_box_size: boxes smaller than this (output pixels) after cropping are dropped.

    Returns (per item):
        ``(x, persons, heads)``: float32 ``[3, crop_size, crop_size]`` in [0, 1], float32
        ``[K, 4]`` and ``[J, 4]`` xyxy boxes in crop pixels.
    """

    def __init__(
        self,
        items: Sequence[AnnotatedImage],
        crop_size: int,
        scale_min: float = 0.5,
        scale_max: float = 1.0,
        train: bool = True,
        seed: int = 0,
        head_bias: float = 0.5,
        min_box_size: float = 2.0,
    ) -> None:
        if crop_size < 1:
            raise ValueError(f"crop_size={crop_size}; expected >= 1")
        if not 0 < scale_min <= scale_max:
            raise ValueError(
                f"scale_min={scale_min}, scale_max={scale_max}; expected 0 < min <= max"
            )
        self.items = list(items)
        self.crop_size = int(crop_size)
        self.scale_min = float(scale_min)
        self.scale_max = float(scale_max)
        self.train = bool(train)
        self.seed = int(seed)
        self.head_bias = float(head_bias)
        self.min_box_size = float(min_box_size)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> RoiSample:
        item = self.items[index]
        image = load_rgb(item.path)
        hw = image.shape[:2]
        if self.train:
            draw = int(torch.randint(0, 2**31 - 1, ()).item())
            rng = np.random.default_rng([self.seed, int(index), draw])
            params = sample_crop_params(
                rng,
                hw,
                item.heads_xyxy,
                self.crop_size,
                self.scale_min,
                self.scale_max,
                head_bias=self.head_bias,
            )
        else:
            params = center_crop_params(hw, item.heads_xyxy, self.crop_size)
        crop = apply_crop(image, params)
        persons = transform_boxes(item.persons_xyxy, params, self.min_box_size)
        heads = transform_boxes(item.heads_xyxy, params, self.min_box_size)
        x = torch.from_numpy(crop).permute(2, 0, 1).float().div_(255.0).contiguous()
        return x, torch.from_numpy(persons), torch.from_numpy(heads)


def collate_roi(
    batch: Sequence[RoiSample],
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Stack crops and keep the per-image box tensors in lists.

    Args:
        batch: samples from :class:`RoiCropDataset`.

    Returns:
        ``(x, persons, heads)``: float32 ``[B, 3, H, W]``, and two lists of B float32
        ``[K_i, 4]`` tensors.
    """
    xs, persons, heads = zip(*batch, strict=True)
    return torch.stack(xs, 0), list(persons), list(heads)
