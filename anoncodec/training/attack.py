"""Privacy attack: train a decoder that maps *our* latents back to the *original* images.

The threat: an attacker holds the packets a camera sent (our quantized latents) and some
clean footage of their own. Nothing stops them from encoding that footage with our encoder
(or any copy of it) and training a new decoder, without the ROI loss, to invert the
latents into the originals, faces included. If faces come back, the anonymization lives in
our decoder only, not in the bitstream.

The attacker's decoder has our synthesis architecture (optionally wider), starts either
from our decoder's weights (``init="ours"``: the quickest way to undo its anonymization)
or from scratch, and is trained with MSE on the whole crop plus an extra fidelity term
inside the head boxes (the ROI loss with k=0: the attacker *wants* the faces). Inputs are
exactly what a packet carries: ``y_hat = round(y - medians) + medians``, which the entropy
coder reproduces bit-exactly, so training needs no entropy coding; reconstruction for
evaluation goes through real packets (:func:`attack_decode`).

Imports torch, anoncodec.codec, anoncodec.roi and anoncodec.data.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from anoncodec.codec import RoiCodec
from anoncodec.codec.layers import synthesis_transform
from anoncodec.config import _Serializable
from anoncodec.data import RoiCropDataset, collate_roi
from anoncodec.data.sample import AnnotatedImage
from anoncodec.errors import ConfigError, DatasetError
from anoncodec.packet import Packet
from anoncodec.roi.loss import roi_loss
from anoncodec.training.loop import resolve_device

__all__ = ["AttackConfig", "AttackResult", "train_attack_decoder", "attack_decode", "quantized_latent"]

logger = logging.getLogger(__name__)

INITS = ("ours", "random")


@dataclass(frozen=True)
class AttackConfig(_Serializable):
    """How the attacker trains.

    Args:
        steps: optimizer steps.
        batch_size: crops per step.
        crop_size: crop side in pixels (a multiple of the codec's downsampling factor).
        lr: Adam learning rate.
        init: ``"ours"`` (start from the codec's decoder) or ``"random"``.
        width: channels N of the attacker's decoder with ``init="random"`` (0: the codec's N).
        head_weight: weight of the fidelity term inside head boxes.
        head_bias: probability that a crop is centered on a head.
        seed: random seed.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    """

    steps: int = 2000
    batch_size: int = 8
    crop_size: int = 128
    lr: float = 1e-4
    init: str = "ours"
    width: int = 0
    head_weight: float = 1.0
    head_bias: float = 0.8
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ConfigError(f"attack init={self.init!r}; expected one of {INITS}")
        if self.steps < 1 or self.batch_size < 1 or self.crop_size < 16:
            raise ConfigError(f"attack steps={self.steps}, batch_size={self.batch_size}, "
                              f"crop_size={self.crop_size}; expected >= 1, >= 1, >= 16")
        if not self.lr > 0 or self.head_weight < 0 or not 0 <= self.head_bias <= 1:
            raise ConfigError(f"attack lr={self.lr}, head_weight={self.head_weight}, "
                              f"head_bias={self.head_bias}; expected > 0, >= 0, in [0, 1]")
        if self.width < 0 or (self.width and self.init == "ours"):
            raise ConfigError(f"attack width={self.width}; a width needs init='random' (0 keeps the codec's N)")


@dataclass
class AttackResult:
    """The trained decoder and its loss curve (``(step, loss)`` every ``log_every`` steps)."""

    decoder: nn.Module
    config: AttackConfig
    wall_s: float
    history: list[tuple[int, float]] = field(default_factory=list)


def quantized_latent(codec: RoiCodec, x: torch.Tensor) -> torch.Tensor:
    """``y_hat`` of a factorized codec, as its packets carry it: ``round(y - medians) + medians``."""
    if codec.architecture != "factorized":
        raise ConfigError(f"the attack needs a factorized codec; got {codec.architecture!r}")
    y = codec.encoder_module()(codec.pad(x))
    medians = torch.from_numpy(codec.entropy_tables().medians).to(y).view(1, -1, 1, 1)
    return torch.round(y - medians) + medians


def _new_decoder(codec: RoiCodec, config: AttackConfig) -> nn.Module:
    if config.init == "ours":
        return copy.deepcopy(codec.g_s)
    cfg = codec.config
    return synthesis_transform(config.width or cfg.N, cfg.M, cfg.extra_blocks)


def train_attack_decoder(codec: RoiCodec, items: Sequence[AnnotatedImage], config: AttackConfig = AttackConfig(),
                         log_every: int = 50, progress: bool = True) -> AttackResult:
    """Train an attacker's decoder on (our latent, original crop) pairs.

    Args:
        codec: our factorized codec (frozen; only its encoder and entropy model are used).
        items: the attacker's clean footage, with head boxes (crops are biased to heads).
        config: training settings.
        log_every: steps between loss records (and progress-bar updates).
        progress: show a tqdm progress bar.

    Raises:
        DatasetError: no footage.
        ConfigError: bad settings, or the codec is not factorized.
    """
    from tqdm import tqdm

    if not items:
        raise DatasetError("the attacker needs some footage: no images were given")
    f = codec.downsampling
    if config.crop_size % f:
        raise ConfigError(f"attack crop_size={config.crop_size} is not a multiple of the codec's "
                          f"downsampling factor {f}")
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    codec = codec.to(device).eval()
    for p in codec.parameters():
        p.requires_grad_(False)
    decoder = _new_decoder(codec, config).to(device).train()
    for p in decoder.parameters():  # a copy of our frozen decoder starts frozen too
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    dataset = RoiCropDataset(items, config.crop_size, scale_min=0.5, scale_max=1.5, train=True,
                             seed=config.seed, head_bias=config.head_bias)
    sampler = RandomSampler(dataset, replacement=True, num_samples=config.steps * config.batch_size)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, collate_fn=collate_roi)
    history: list[tuple[int, float]] = []
    start = time.perf_counter()
    running = []
    bar = tqdm(total=config.steps, desc="attack decoder", unit="step", disable=not progress)
    for step, (x, _persons, heads) in enumerate(loader, start=1):
        x = x.to(device)
        with torch.no_grad():
            y_hat = quantized_latent(codec, x)
        x_hat = decoder(y_hat)[..., : x.shape[-2], : x.shape[-1]]
        loss = nn.functional.mse_loss(x_hat, x)
        if config.head_weight:
            loss = loss + config.head_weight * roi_loss(x_hat, x, [h.to(device) for h in heads], k=0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(float(loss.detach()))
        if step % log_every == 0 or step == config.steps:
            mean = float(np.mean(running))
            running.clear()
            history.append((step, mean))
            bar.set_postfix(loss=f"{mean:.4f}", psnr=f"{-10 * math.log10(max(mean, 1e-10)):.1f}")
        bar.update(1)
    bar.close()
    decoder.eval()
    return AttackResult(decoder.cpu(), config, time.perf_counter() - start, history)


@torch.no_grad()
def attack_decode(codec: RoiCodec, decoder: nn.Module, packet: Packet) -> np.ndarray:
    """Decode a real packet with the attacker's decoder: uint8 ``[H, W, 3]`` RGB."""
    codec._check_packet(packet, 1)
    stream = packet.streams[0]
    y_hat = codec.entropy_tables().decode(stream.data, stream.shape)
    device = next(decoder.parameters()).device
    x_hat = decoder(torch.from_numpy(y_hat)[None].to(device))[0, :, : packet.height, : packet.width]
    return (x_hat.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())
