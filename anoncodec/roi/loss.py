"""The region-of-interest loss and the full training objective (DESIGN.md section 1).

Imports torch and :mod:`anoncodec.config` only. For an image with boxes ``B``::

    l_k(b) = | k - MSE(x_hat[b], x[b]) |      (x, x_hat in [0, 1], so MSE <= 1)
    L_k    = mean over the batch of ( mean over the image's boxes of l_k(b) )

Images without boxes contribute 0 to the batch mean. ``k = 0`` asks for fidelity inside
the boxes, ``k = 1`` rewards error there, i.e. anonymizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from anoncodec.config import RoiLossConfig

__all__ = ["roi_loss", "bpp_from_likelihoods", "RoiObjective", "ObjectiveTerms"]


def _box_slices(box: Tensor, height: int, width: int) -> tuple[slice, slice] | None:
    """Integer pixel slices of a clipped ``xyxy`` box, or ``None`` when it is empty."""
    x1 = max(0, min(width, int(math.floor(float(box[0])))))
    y1 = max(0, min(height, int(math.floor(float(box[1])))))
    x2 = max(0, min(width, int(math.ceil(float(box[2])))))
    y2 = max(0, min(height, int(math.ceil(float(box[3])))))
    if x2 <= x1 or y2 <= y1:
        return None
    return slice(y1, y2), slice(x1, x2)


def roi_loss(x_hat: Tensor, x: Tensor, boxes: Sequence[Tensor], k: float) -> Tensor:
    """ROI loss ``L_k`` of a batch.

    Args:
        x_hat: reconstruction, float ``[B, C, H, W]`` in [0, 1].
        x: original, same shape.
        boxes: per image a ``[K_i, 4]`` tensor of ``xyxy`` pixel boxes (may be empty);
            boxes are clipped to the image, boxes empty after clipping are ignored.
        k: target MSE inside the boxes (0 = fidelity, 1 = destroy).

    Returns:
        Scalar tensor: per box ``|k - MSE|``, averaged per image over its boxes, then over
        the batch (images without boxes count as 0).
    """
    if x_hat.shape != x.shape or x.dim() != 4:
        raise ValueError(f"x_hat {tuple(x_hat.shape)} and x {tuple(x.shape)} must be equal [B,C,H,W]")
    if len(boxes) != x.shape[0]:
        raise ValueError(f"got box lists for {len(boxes)} images, batch has {x.shape[0]}")
    height, width = x.shape[-2:]
    per_image = []
    for i, image_boxes in enumerate(boxes):
        terms = []
        for box in image_boxes:
            sl = _box_slices(box, height, width)
            if sl is None:
                continue
            mse = torch.mean((x_hat[i, :, sl[0], sl[1]] - x[i, :, sl[0], sl[1]]) ** 2)
            terms.append(torch.abs(k - mse))
        per_image.append(torch.stack(terms).mean() if terms else x_hat.new_zeros(()))
    return torch.stack(per_image).mean()


def bpp_from_likelihoods(likelihoods: dict[str, Tensor], num_pixels: int) -> Tensor:
    """Estimated bits per pixel: ``sum(-log2 p) / pixels`` over every latent's likelihoods."""
    total = sum(torch.log(lk).sum() for lk in likelihoods.values())
    return total / (-math.log(2) * num_pixels)


@dataclass
class ObjectiveTerms:
    """Every term of the objective, for logging; ``loss`` is what is minimized."""

    loss: Tensor
    mse: Tensor
    person_roi: Tensor
    head_roi: Tensor
    bpp: Tensor


class RoiObjective(torch.nn.Module):
    """``L = w_mse*MSE + w_p*L_{k_p}(persons) + w_h*L_{k_h}(heads) + w_r*bpp``.

    The entropy bottleneck's auxiliary (quantile) loss is *not* included: it is
    minimized by its own optimizer (see :mod:`anoncodec.training.optim`).
    """

    def __init__(self, config: RoiLossConfig | None = None) -> None:
        super().__init__()
        self.config = config or RoiLossConfig()

    def forward(
        self,
        x_hat: Tensor,
        x: Tensor,
        likelihoods: dict[str, Tensor],
        persons: Sequence[Tensor],
        heads: Sequence[Tensor],
    ) -> ObjectiveTerms:
        """Compute every term; inputs as in :func:`roi_loss`, ``likelihoods`` from ``forward``."""
        c = self.config
        n, _, h, w = x.shape
        mse = torch.mean((x_hat - x) ** 2)
        person_roi = roi_loss(x_hat, x, persons, c.person_k)
        head_roi = roi_loss(x_hat, x, heads, c.head_k)
        bpp = bpp_from_likelihoods(likelihoods, n * h * w)
        loss = (
            c.mse_weight * mse
            + c.person_weight * person_roi
            + c.head_weight * head_roi
            + c.rate_weight * bpp
        )
        return ObjectiveTerms(loss=loss, mse=mse, person_roi=person_roi, head_roi=head_roi, bpp=bpp)
