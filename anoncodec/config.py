"""Typed configuration shared by every part of anoncodec.

Stdlib only. Every dataclass is frozen, validates itself in ``__post_init__`` (raising
:class:`~anoncodec.errors.ConfigError`) and round-trips through ``to_dict``/``from_dict``,
so a checkpoint can carry the exact configuration that produced it. Defaults reproduce
the paper (Liebender et al., 2024).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

from anoncodec.errors import ConfigError

__all__ = [
    "CodecConfig",
    "RoiLossConfig",
    "DataSourceConfig",
    "TrainConfig",
    "ServeConfig",
    "is_loopback",
    "load_config_file",
    "load_train_config",
    "lr_factor",
]

T = TypeVar("T")

ARCHITECTURES = ("factorized", "hyperprior")
SOURCE_KINDS = ("crowdhuman", "coco", "footage", "labeled")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


class _Serializable:
    """``to_dict``/``from_dict`` for (nested) frozen dataclasses; unknown keys are errors."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a table/mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown key(s) {unknown}; expected some of {sorted(fields)}"
            )
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            sub = _NESTED.get((cls.__name__, name))
            if sub is not None and isinstance(value, list):
                value = tuple(sub.from_dict(v) for v in value)
            elif sub is not None:
                value = sub.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from exc


#: the CodecConfig fields of the learned head gate
_GATE_FIELDS = ("gate_channels", "gate_threshold", "gate_margin")


@dataclass(frozen=True)
class CodecConfig(_Serializable):
    """Architecture of the learned codec.

    Args:
        architecture: registry key, ``"factorized"`` (Ballé 2018 fully factorized prior,
            the paper's model) or ``"hyperprior"`` (scale hyperprior).
        N: channels of the hidden layers.
        M: channels of the latent ``y``.
        extra_blocks: stride-2 conv+GDN blocks added to the 4 of Ballé's transforms (0-2);
            each doubles the downsampling factor and the receptive field.
        gate_channels: hidden channels of the learned head gate (factorized prior only;
            0: no gate). The gate predicts from ``y`` which latent cells show a head and the
            encoder writes the entropy model's medians there (:mod:`anoncodec.codec.gate`).
        gate_threshold: probability above which a cell is erased.
        gate_margin: cells erased around every cell the gate fires on.
    """

    architecture: str = "factorized"
    N: int = 128
    M: int = 192
    extra_blocks: int = 0
    gate_channels: int = 0
    gate_threshold: float = 0.5
    gate_margin: int = 1

    def __post_init__(self) -> None:
        _check(self.architecture in ARCHITECTURES,
               f"codec.architecture={self.architecture!r}; expected one of {ARCHITECTURES}")
        _check(isinstance(self.N, int) and 1 <= self.N <= 1024, f"codec.N={self.N!r}; expected 1..1024")
        _check(isinstance(self.M, int) and 1 <= self.M <= 1024, f"codec.M={self.M!r}; expected 1..1024")
        _check(self.extra_blocks in (0, 1, 2), f"codec.extra_blocks={self.extra_blocks!r}; expected 0, 1 or 2")
        _check(isinstance(self.gate_channels, int) and 0 <= self.gate_channels <= 512,
               f"codec.gate_channels={self.gate_channels!r}; expected 0 (no gate) .. 512")
        _check(not (self.gate_channels and self.architecture != "factorized"),
               "codec.gate_channels > 0 needs architecture 'factorized'")
        _check(isinstance(self.gate_threshold, (int, float)) and 0.0 < self.gate_threshold < 1.0,
               f"codec.gate_threshold={self.gate_threshold!r}; expected a probability in (0, 1)")
        _check(isinstance(self.gate_margin, int) and 0 <= self.gate_margin <= 4,
               f"codec.gate_margin={self.gate_margin!r}; expected 0..4 latent cells")

    def to_dict(self) -> dict[str, Any]:
        """As the other configs; without a gate the gate keys are left out, so codecs
        trained before the gate existed keep their serialized config and model id."""
        data = super().to_dict()
        if not self.gate_channels:
            for key in _GATE_FIELDS:
                data.pop(key)
        return data

    def without_gate(self) -> "CodecConfig":
        """The same transforms without the gate (what a gated codec is initialized from)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in _GATE_FIELDS}
        return dataclasses.replace(self, **defaults)


    @property
    def downsampling(self) -> int:
        """Factor by which the latent is smaller than the (padded) image."""
        return 2 ** (4 + self.extra_blocks)


@dataclass(frozen=True)
class RoiLossConfig(_Serializable):
    """Weights of the training objective (DESIGN.md section 1).

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
RESTRICTABLE_PROTOCOLS = ("health", "metadata", "inference", "shared-memory", "model-config",
                          "model-repository", "statistics", "trace", "logging")
#: what ``admin_key_file`` protects by default: everything but health, metadata and inference
ADMIN_PROTOCOLS = ("model-repository", "model-config", "shared-memory", "statistics", "trace", "logging")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``127.x.x.x``, ``::1``, ``localhost``)."""
    return host == "localhost" or host == "::1" or host.startswith("127.")


@dataclass(frozen=True)
class ServeConfig(_Serializable):
    """How ``anoncodec serve`` runs the local ``tritonserver`` (pip ``nvidia-pytriton``).

    Args:
        repository: the model repository folder (filled by ``anoncodec export``).
        host: address the three endpoints bind to (``0.0.0.0`` to accept remote cameras).
        grpc_port: gRPC endpoint (cameras, ``tritonclient.grpc``).
        http_port: HTTP/REST endpoint (also used to poll readiness).
        metrics_port: Prometheus ``/metrics`` endpoint.
        startup_timeout: seconds to wait for every model to be ready.
        log_verbose: tritonserver ``--log-verbose`` level (0: off).
        http_host: address of the HTTP endpoint (None: ``host``). Triton has no TLS for
            HTTP, so with TLS on a non-loopback ``host`` it must be a loopback address.
        tls_cert: PEM server certificate; with ``tls_key`` the gRPC endpoint speaks TLS only.
        tls_key: PEM private key of ``tls_cert``.
        tls_client_ca: PEM CA bundle; when set, gRPC clients must present a certificate
            it signed (mutual TLS). Needs ``tls_cert``.
        admin_key_file: file holding a secret (one line, >= 16 of ``A-Za-z0-9_-``); when
            set, the ``admin_protocols`` of gRPC and HTTP answer only requests that carry
            it in the ``admin_header`` header (gRPC: ``triton-grpc-protocol-<header>``).
        admin_protocols: the Triton protocols/APIs that need the key (default: model
            control, configuration, statistics, trace, logging, shared memory).
        admin_header: name of that header (lowercase letters, digits, ``-``).
    """

    repository: str = "model_repository"
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    startup_timeout: float = 180.0
    log_verbose: int = 0
    http_host: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    admin_key_file: str | None = None
    admin_protocols: tuple[str, ...] = ADMIN_PROTOCOLS
    admin_header: str = "admin-key"

    def __post_init__(self) -> None:
        _check(bool(self.repository), "serve.repository must name a model repository folder")
        ports = (self.grpc_port, self.http_port, self.metrics_port)
        for name, port in zip(("grpc_port", "http_port", "metrics_port"), ports):
            _check(isinstance(port, int) and 1 <= port <= 65535, f"serve.{name}={port!r}; expected 1..65535")
        _check(len(set(ports)) == 3, f"serve ports must differ, got grpc/http/metrics {ports}")
        _check(self.startup_timeout > 0, f"serve.startup_timeout={self.startup_timeout!r}; expected > 0")
        _check(isinstance(self.log_verbose, int) and self.log_verbose >= 0,
               f"serve.log_verbose={self.log_verbose!r}; expected an integer >= 0")
        _check((self.tls_cert is None) == (self.tls_key is None),
               f"serve.tls_cert={self.tls_cert!r}, serve.tls_key={self.tls_key!r}; give both (TLS) or neither")
        _check(self.tls_client_ca is None or self.tls_cert is not None,
               "serve.tls_client_ca (client certificates) needs serve.tls_cert and serve.tls_key too")
        if self.tls_cert is not None and not is_loopback(self.host):
            http = self.http_host or self.host
            _check(is_loopback(http),
                   f"serve.http_host={http!r}: with TLS on a non-loopback host ({self.host!r}) the HTTP "
                   "endpoint, which Triton cannot encrypt, would accept frames in plain text; set "
                   "http_host (--http-host) to 127.0.0.1, or put a TLS proxy in front of it")
        unknown = sorted(set(self.admin_protocols) - set(RESTRICTABLE_PROTOCOLS))
        _check(not unknown and len(set(self.admin_protocols)) == len(self.admin_protocols),
               f"serve.admin_protocols={list(self.admin_protocols)}: unknown or repeated {unknown}; "
               f"expected distinct names from {list(RESTRICTABLE_PROTOCOLS)}")
        _check(self.admin_key_file is None or len(self.admin_protocols) > 0,
               "serve.admin_key_file is set but serve.admin_protocols is empty; name what the key protects")
        _check(isinstance(self.admin_header, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.admin_header) is not None,
               f"serve.admin_header={self.admin_header!r}; expected lowercase letters, digits and '-'")


_NESTED: dict[tuple[str, str], type] = {
    ("TrainConfig", "codec"): CodecConfig,
    ("TrainConfig", "loss"): RoiLossConfig,
    ("TrainConfig", "data"): DataSourceConfig,
}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(path.read_text())
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text())
            return data or {}
    except Exception as exc:  # parse errors of either library
        raise ConfigError(f"cannot parse {path}: {exc}") from exc
    raise ConfigError(f"config file {str(path)!r}: expected a .toml, .yaml or .yml file")


def load_train_config(path: str | Path) -> TrainConfig:
    """Load a :class:`TrainConfig`, resolving relative paths against the file's folder."""
    path = Path(path).resolve()
    cfg = TrainConfig.from_dict(load_config_file(path))
    base = path.parent

    def resolve(p: str) -> str:
        return p if not p or Path(p).is_absolute() else str((base / p).resolve())

    data = tuple(
        dataclasses.replace(src, path=resolve(src.path), images=resolve(src.images)) for src in cfg.data
    )
    return dataclasses.replace(cfg, data=data, out_dir=resolve(cfg.out_dir), init_from=resolve(cfg.init_from))


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
