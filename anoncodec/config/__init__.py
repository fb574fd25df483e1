"""Typed configuration shared by every part of anoncodec.

Stdlib only. Every dataclass is frozen, validates itself in ``__post_init__`` (raising
:class:`~anoncodec.errors.ConfigError`) and round-trips through ``to_dict``/``from_dict``,
so a checkpoint can carry the exact configuration that produced it. Defaults reproduce
the paper (Liebender et al., 2024).

Modules per concern, all re-exported here (``from anoncodec.config import X``):
``serializable`` (the dict round trip), ``codec``, ``training``, ``serving`` and ``files``.
"""

# ``X as X``: importable from here as before the split, though not in __all__ (the
# constants, and the base class anoncodec.training.attack derives its config from).
from anoncodec.config.codec import ARCHITECTURES as ARCHITECTURES
from anoncodec.config.codec import CodecConfig
from anoncodec.config.files import load_config_file, load_train_config
from anoncodec.config.serializable import _Serializable as _Serializable
from anoncodec.config.serving import ADMIN_PROTOCOLS as ADMIN_PROTOCOLS
from anoncodec.config.serving import RESTRICTABLE_PROTOCOLS as RESTRICTABLE_PROTOCOLS
from anoncodec.config.serving import ServeConfig, is_loopback
from anoncodec.config.training import SOURCE_KINDS as SOURCE_KINDS
from anoncodec.config.training import (
    DataSourceConfig,
    RoiLossConfig,
    TrainConfig,
    lr_factor,
)

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
