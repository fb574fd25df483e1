"""The learned head gate: the encoder itself erases heads from the latent.

Imports torch only. A small convolutional head on the latent ``y`` predicts, per latent
cell, whether the cell shows a head (trained with binary cross-entropy on the cells under
head boxes). Every cell it fires on, and ``margin`` cells around it (the decoder's
receptive field spans neighbouring cells), is overwritten with the entropy model's
per-channel median: symbol 0 of every channel, the cheapest there is, and no information
about the head. The gate is part of the encoder graph (:class:`GatedEncoder` is what
``encoder.onnx`` holds), so the camera never writes the head into a packet and no decoder,
ours or an attacker's, gets it back.

Unlike the camera-side guard (:mod:`anoncodec.edge.guard`, CenterFace on the frame), the
gate sees heads turned away and from behind, since it learns from head boxes, not from
faces; the two combine (the guard's mask is applied on top).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HeadGate", "GatedEncoder", "dilate"]


def dilate(mask: Tensor, margin: int) -> Tensor:
    """Grow a bool ``[B, h, w]`` mask by ``margin`` cells on every side (square)."""
    if margin <= 0:
        return mask
    grown = F.max_pool2d(mask[:, None].float(), kernel_size=2 * margin + 1, stride=1, padding=margin)
    return grown[:, 0] > 0.5


class HeadGate(nn.Module):
    """Per-cell head logits from the latent, and the erasure they drive.

    Args:
        M: latent channels.
        channels: hidden channels (three 3x3 convolutions: a 7x7-cell view of ``y``).
        threshold: probability above which a cell is erased.
        margin: cells erased around every cell the gate fires on.
    """

    def __init__(self, M: int, channels: int, threshold: float = 0.5, margin: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(M, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, 1, 3, padding=1),
        )
        self.margin = int(margin)
        self.logit_threshold = math.log(threshold / (1 - threshold))

    def logits(self, y: Tensor) -> Tensor:
        """``[B, h, w]`` logits that a cell shows a head."""
        return self.net(y)[:, 0]

    def mask(self, logits: Tensor, extra: Tensor | None = None) -> Tensor:
        """Cells to erase: the gate's cells (or ``extra``'s, a bool ``[B, h, w]``), dilated."""
        fired = logits > self.logit_threshold
        if extra is not None:
            fired = fired | extra
        return dilate(fired, self.margin)

    @staticmethod
    def erase(y: Tensor, mask: Tensor, medians: Tensor) -> Tensor:
        """``y`` with the cells of ``mask`` set to the per-channel ``medians`` ``[M]``."""
        return torch.where(mask[:, None], medians.reshape(1, -1, 1, 1).to(y.dtype), y)


class GatedEncoder(nn.Module):
    """``x -> g_a -> y -> gate -> y`` with the head cells at the medians (what is exported).

    Args:
        g_a: the analysis transform.
        gate: the trained head gate.
        medians: ``[M]`` medians of the entropy model (copied: the exported graph and the
            entropy coder's tables must agree on them).
    """

    def __init__(self, g_a: nn.Module, gate: HeadGate, medians: Tensor) -> None:
        super().__init__()
        self.g_a = g_a
        self.gate = gate
        self.register_buffer("medians", medians.detach().clone().float())

    def forward(self, x: Tensor) -> Tensor:
        y = self.g_a(x)
        return self.gate.erase(y, self.gate.mask(self.gate.logits(y)), self.medians)
