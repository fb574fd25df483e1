"""Conversions between uint8 RGB frames and the codec's float tensors."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["frame_to_tensor", "tensor_to_frame"]


def frame_to_tensor(frame_rgb: np.ndarray) -> Tensor:
    """uint8 ``[H,W,3]`` RGB -> float32 ``[1,3,H,W]`` in [0,1]."""
    if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 frame [H, W, 3], got {frame_rgb.dtype} {frame_rgb.shape}")
    return torch.from_numpy(np.ascontiguousarray(frame_rgb.transpose(2, 0, 1))).float().div(255)[None]


def tensor_to_frame(x: Tensor) -> np.ndarray:
    """float ``[1,3,H,W]`` in [0,1] -> uint8 ``[H,W,3]`` RGB (rounded, clipped)."""
    return (x[0].detach().cpu().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())
