"""Training configs: the ROI objective, the data sources, the run, and its learning-rate schedule.

Stdlib only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from anoncodec.config.codec import CodecConfig
from anoncodec.config.serializable import _NESTED, _check, _Serializable

__all__ = ["SOURCE_KINDS", "DataSourceConfig", "RoiLossConfig", "TrainConfig", "lr_factor"]

SOURCE_KINDS = ("crowdhuman", "coco", "footage", "labeled")


@dataclass(frozen=True)
class RoiLossConfig(_Serializable):
    """Weights of the training objective (docs/ARCHITECTURE.md).

    ``L = mse_weight*MSE + person_weight*L_{person_k}(persons)
    + head_weight*L_{head_k}(heads) + rate_weight*bpp + head_rate_weight*head_bits
    + head_median_weight*head_median``, with ``L_k(b) = |k - MSE(x_hat[b], x[b])|`` per
    box, ``head_bits`` the bits per latent cell under head boxes (grown by
    ``head_rate_margin`` cells) and ``head_median`` the mean squared distance of the
    latent there from the entropy model's medians. The paper has neither head term:
    their default weights are 0.

    With a gated codec (``codec.gate_channels > 0``), ``gate_weight`` weighs the gate's
    binary cross-entropy against the cells under head boxes (positives weighted by
    ``gate_pos_weight``: a missed head leaks a face, a false alarm costs a patch of
    background). ``head_target="fill"`` compares the reconstruction inside head boxes
    with the box's mean colour instead of the face (in every term; with ``head_k = 0``
    the head ROI term then asks for that flat patch), so the decoder learns to paint heads
    flat rather than an average face.
    """

    mse_weight: float = 1.0
    person_weight: float = 1.0
    person_k: float = 0.0
    head_weight: float = 0.6
    head_k: float = 1.0
    rate_weight: float = 0.04
    aux_weight: float = 1.0
    head_rate_weight: float = 0.0
    head_rate_margin: int = 0
    head_median_weight: float = 0.0
    gate_weight: float = 0.0
    gate_pos_weight: float = 4.0
    head_target: str = "original"

    def __post_init__(self) -> None:
        _check(self.head_target in ("original", "fill"),
               f"loss.head_target={self.head_target!r}; expected 'original' or 'fill'")
        _check(isinstance(self.gate_pos_weight, (int, float)) and self.gate_pos_weight > 0,
               f"loss.gate_pos_weight={self.gate_pos_weight!r}; expected a number > 0")
        _check(isinstance(self.head_rate_margin, int) and 0 <= self.head_rate_margin <= 8,
               f"loss.head_rate_margin={self.head_rate_margin!r}; expected 0..8 latent cells")
        for name in ("mse_weight", "person_weight", "head_weight", "rate_weight", "aux_weight",
                     "head_rate_weight", "head_median_weight", "gate_weight"):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and value >= 0,
                   f"loss.{name}={value!r}; expected a number >= 0")
        for name in ("person_k", "head_k"):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and 0 <= value <= 1,
                   f"loss.{name}={value!r}; expected a number in [0, 1] (MSE of [0,1] images)")


@dataclass(frozen=True)
class DataSourceConfig(_Serializable):
    """One training/validation source.

    Args:
        kind: ``"crowdhuman"`` (``.odgt`` + image dir), ``"coco"`` (person keypoint json +
            image dir) or ``"footage"`` (video file or image folder, auto-annotated once).
        path: the ``.odgt``/``.json`` annotation file, or the video/folder/image for footage.
        images: image directory for crowdhuman/coco (default: beside the annotation file).
        person_box: ``"full"`` or ``"visible"`` (CrowdHuman ``fbox``/``vbox``).
        skip_ignored: drop boxes tagged ignore (CrowdHuman ``extra.ignore``, COCO ``iscrowd``).
        skip_unsure_heads: drop CrowdHuman head boxes marked ignore/unsure.
        frame_stride: for videos, annotate every n-th frame.
        max_frames: cap on frames taken from a video/folder (0: no cap).
        weight: relative sampling weight of this source in training batches.
        val_fraction: share of the source held out for validation (by id, or by time for videos).
    """

    kind: str = "footage"
    path: str = ""
    images: str = ""
    person_box: str = "full"
    skip_ignored: bool = True
    skip_unsure_heads: bool = False
    frame_stride: int = 1
    max_frames: int = 0
    weight: float = 1.0
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        _check(self.kind in SOURCE_KINDS, f"data source kind={self.kind!r}; expected one of {SOURCE_KINDS}")
        _check(bool(self.path), f"data source of kind {self.kind!r} needs a 'path'")
        _check(self.person_box in ("full", "visible"),
               f"person_box={self.person_box!r}; expected 'full' or 'visible'")
        _check(isinstance(self.frame_stride, int) and self.frame_stride >= 1,
               f"frame_stride={self.frame_stride!r}; expected an integer >= 1")
        _check(isinstance(self.max_frames, int) and self.max_frames >= 0,
               f"max_frames={self.max_frames!r}; expected an integer >= 0")
        _check(self.weight > 0, f"weight={self.weight!r}; expected > 0")
        _check(0 <= self.val_fraction < 1, f"val_fraction={self.val_fraction!r}; expected in [0, 1)")


@dataclass(frozen=True)
class TrainConfig(_Serializable):
    """Everything a training run needs; ``anoncodec train --config FILE`` reads it.

    Relative paths in ``data`` and ``out_dir`` are resolved against the config file's folder.
    """

    codec: CodecConfig = field(default_factory=CodecConfig)
    loss: RoiLossConfig = field(default_factory=RoiLossConfig)
    data: tuple[DataSourceConfig, ...] = ()
    out_dir: str = "runs/train"
    steps: int = 10000
    batch_size: int = 8
    crop_size: int = 256
    # Zoom range of the scale augmentation: a crop of crop_size*s pixels is resized to
    # crop_size, s drawn log-uniformly; s < 1 zooms in (heads look larger than in the source).
    scale_min: float = 0.5
    scale_max: float = 1.0
    lr: float = 1e-4
    # "constant", or "cosine": linear warm-up over lr_warmup steps, then a cosine decay
    # to lr * lr_min_factor at the last step.
    lr_schedule: str = "constant"
    lr_warmup: int = 0
    lr_min_factor: float = 0.05
    aux_lr: float = 1e-3
    # "noise" (Ballé: the decoder sees y + U(-0.5, 0.5)) or "mixed" (the decoder sees y
    # rounded around the entropy model's medians, straight-through; the rate still uses
    # the noise proxy). Only the factorized prior implements "mixed".
    quantization: str = "noise"
    clip_grad_norm: float = 1.0
    # A checkpoint whose weights start the run (same codec config), e.g. a ladder point
    # fine-tuned from its neighbour; ignored when resuming from out_dir/last.pt.
    init_from: str = ""
    checkpoint_every: int = 500
    val_every: int = 500
    val_images: int = 16
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    # torch intra-op threads (0: torch's default). Measured on 2 cores: 1 thread trains this
    # small codec as fast as 2, and 10x faster than 2 when another process shares the CPU.
    threads: int = 0
    # Share of training images whose known heads (grown by erase_margin latent cells) are
    # erased in the latent before decoding, as the camera-side guard erases the heads it
    # finds: the decoder learns to render guarded packets (factorized prior only).
    erase_heads: float = 0.0
    erase_margin: int = 1

    def __post_init__(self) -> None:
        _check(isinstance(self.erase_heads, (int, float)) and 0.0 <= self.erase_heads <= 1.0,
               f"erase_heads={self.erase_heads!r}; expected a share in [0, 1]")
        _check(isinstance(self.erase_margin, int) and 0 <= self.erase_margin <= 4,
               f"erase_margin={self.erase_margin!r}; expected 0..4 latent cells (the guard's margin)")
        _check(not self.erase_heads or self.codec.architecture == "factorized",
               "erase_heads > 0 needs codec.architecture 'factorized' (the guard's codec)")
        _check(isinstance(self.threads, int) and self.threads >= 0,
               f"threads={self.threads!r}; expected an integer >= 0 (0: torch's default)")
        for name in ("steps", "batch_size", "crop_size", "checkpoint_every", "val_every", "val_images"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"{name}={value!r}; expected an integer >= 1")
        _check(self.crop_size % 16 == 0, f"crop_size={self.crop_size}; expected a multiple of 16")
        _check(0 < self.scale_min <= self.scale_max,
               f"scale_min={self.scale_min}, scale_max={self.scale_max}; expected 0 < min <= max")
        _check(self.lr > 0 and self.aux_lr > 0, "lr and aux_lr must be > 0")
        _check(self.quantization in ("noise", "mixed"),
               f"quantization={self.quantization!r}; expected 'noise' or 'mixed'")
        _check(self.lr_schedule in ("constant", "cosine"),
               f"lr_schedule={self.lr_schedule!r}; expected 'constant' or 'cosine'")
        _check(isinstance(self.lr_warmup, int) and self.lr_warmup >= 0,
               f"lr_warmup={self.lr_warmup!r}; expected an integer >= 0")
        _check(0 < self.lr_min_factor <= 1, f"lr_min_factor={self.lr_min_factor!r}; expected in (0, 1]")
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               f"device={self.device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
        _check(isinstance(self.num_workers, int) and self.num_workers >= 0,
               f"num_workers={self.num_workers!r}; expected an integer >= 0")


#: Triton's restricted-protocol names (``--grpc-restricted-protocol``/``--http-restricted-api``).


_NESTED.update({
    ("TrainConfig", "codec"): CodecConfig,
    ("TrainConfig", "loss"): RoiLossConfig,
    ("TrainConfig", "data"): DataSourceConfig,
})


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Multiplier of ``cfg.lr`` at ``step`` (0-based) under ``cfg.lr_schedule``."""
    if cfg.lr_warmup and step < cfg.lr_warmup:
        return (step + 1) / cfg.lr_warmup
    if cfg.lr_schedule == "constant":
        return 1.0
    span = max(1, cfg.steps - cfg.lr_warmup)
    progress = min(1.0, max(0.0, (step - cfg.lr_warmup) / span))
    floor = cfg.lr_min_factor
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
