"""Validation metrics that know about regions: PSNR outside heads, MSE inside heads.

Torch only. Masks are built from ``xyxy`` pixel boxes (clipped to the image).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["box_mask", "masked_mse", "psnr", "region_metrics"]


def box_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    """Bool ``[H, W]`` mask that is True inside any of ``boxes`` (``[K, 4]`` xyxy)."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    for x1, y1, x2, y2 in boxes.tolist():
        xa, ya = max(0, math.floor(x1)), max(0, math.floor(y1))
        xb, yb = min(width, math.ceil(x2)), min(height, math.ceil(y2))
        if xb > xa and yb > ya:
            mask[ya:yb, xa:xb] = True
    return mask


def masked_mse(x_hat: Tensor, x: Tensor, mask: Tensor) -> float:
    """MSE over the pixels where ``mask [H,W]`` is True (all channels); NaN if none."""
    if not bool(mask.any()):
        return float("nan")
    diff = (x_hat - x).pow(2).mean(dim=0)  # [H, W]
    return float(diff[mask.to(diff.device)].mean())


def psnr(mse: float, peak: float = 1.0) -> float:
    """PSNR in dB for an MSE on images in ``[0, peak]`` (inf for a perfect match)."""
    if math.isnan(mse):
        return float("nan")
    return float("inf") if mse <= 0 else 10 * math.log10(peak**2 / mse)


def region_metrics(x_hat: Tensor, x: Tensor, heads: Sequence[Tensor]) -> dict[str, float]:
    """Mean over images of PSNR outside the head boxes and MSE inside them.

    Args:
        x_hat, x: float ``[B, 3, H, W]`` in [0, 1].
        heads: per image ``[K, 4]`` xyxy head boxes.
    """
    outside, inside = [], []
    for i in range(x.shape[0]):
        mask = box_mask(heads[i], x.shape[-2], x.shape[-1])
        outside.append(masked_mse(x_hat[i], x[i], ~mask))
        mse_in = masked_mse(x_hat[i], x[i], mask)
        if not math.isnan(mse_in):
            inside.append(mse_in)
    mse_out = sum(outside) / len(outside)
    return {
        "psnr_outside_heads": psnr(mse_out),
        "mse_inside_heads": sum(inside) / len(inside) if inside else float("nan"),
    }
