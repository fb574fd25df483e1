"""The two optimizers of a CompressAI model: Adam for the network, Adam for the quantiles.

The entropy bottleneck's ``quantiles`` only learn from the auxiliary loss; every other
parameter learns from the rate-distortion(-ROI) objective. The two sets are checked to
be disjoint and to cover every parameter, so nothing is trained twice or never.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["make_optimizers", "split_parameters"]


def split_parameters(model: nn.Module) -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter]]:
    """``(net, aux)`` parameters by name; ``aux`` are the names ending in ``.quantiles``."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    aux = {n: p for n, p in params.items() if n.endswith(".quantiles")}
    net = {n: p for n, p in params.items() if not n.endswith(".quantiles")}
    assert not set(net) & set(aux), "a parameter is in both optimizers"
    assert set(net) | set(aux) == set(params), "a parameter is in no optimizer"
    return net, aux


def make_optimizers(model: nn.Module, lr: float, aux_lr: float) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam over the network parameters and Adam over the entropy-bottleneck quantiles."""
    net, aux = split_parameters(model)
    if not aux:
        raise ValueError("model has no '.quantiles' parameters: is there an EntropyBottleneck?")
    return torch.optim.Adam(net.values(), lr=lr), torch.optim.Adam(aux.values(), lr=aux_lr)
