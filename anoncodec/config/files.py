"""Config files: TOML or YAML into a dict, and a :class:`TrainConfig` with resolved paths.

Stdlib only (PyYAML for ``.yaml``, imported when needed).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from anoncodec.config.training import TrainConfig
from anoncodec.errors import ConfigError

__all__ = ["load_config_file", "load_train_config"]


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
