"""Analysis/synthesis transforms built from CompressAI's layers.

Imports torch and compressai only. Ballé's transforms: 5x5 convolutions with stride 2 and
simplified GDN (``GDN1``, Johnston et al. 2019) between them; the synthesis mirrors the
analysis with transposed convolutions and inverse GDN and ends in a sigmoid so that the
reconstruction lies in [0, 1].
"""

from __future__ import annotations

from compressai.layers import GDN1
from compressai.models.utils import conv, deconv
from torch import nn

__all__ = ["analysis_transform", "synthesis_transform", "hyper_analysis", "hyper_synthesis"]


def analysis_transform(N: int, M: int, extra_blocks: int = 0) -> nn.Sequential:
    """``g_a``: ``[B,3,H,W] -> [B,M,H/f,W/f]`` with ``f = 2**(4+extra_blocks)``."""
    layers: list[nn.Module] = [conv(3, N), GDN1(N)]
    for _ in range(2 + extra_blocks):
        layers += [conv(N, N), GDN1(N)]
    layers.append(conv(N, M))
    return nn.Sequential(*layers)


def synthesis_transform(N: int, M: int, extra_blocks: int = 0) -> nn.Sequential:
    """``g_s``: ``[B,M,h,w] -> [B,3,h*f,w*f]`` in [0, 1]."""
    layers: list[nn.Module] = [deconv(M, N), GDN1(N, inverse=True)]
    for _ in range(2 + extra_blocks):
        layers += [deconv(N, N), GDN1(N, inverse=True)]
    layers += [deconv(N, 3), nn.Sigmoid()]
    return nn.Sequential(*layers)


def hyper_analysis(N: int, M: int) -> nn.Sequential:
    """``h_a``: ``|y| [B,M,h,w] -> z [B,N,h/4,w/4]`` (Ballé 2018)."""
    return nn.Sequential(
        conv(M, N, stride=1, kernel_size=3), nn.ReLU(inplace=True),
        conv(N, N), nn.ReLU(inplace=True),
        conv(N, N),
    )


def hyper_synthesis(N: int, M: int) -> nn.Sequential:
    """``h_s``: ``z_hat -> scales [B,M,h,w]`` (non-negative)."""
    return nn.Sequential(
        deconv(N, N), nn.ReLU(inplace=True),
        deconv(N, N), nn.ReLU(inplace=True),
        conv(N, M, stride=1, kernel_size=3), nn.ReLU(inplace=True),
    )
