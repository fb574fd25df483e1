"""Name -> architecture registry, so configs, CLIs and checkpoints name models by string."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from anoncodec.config import CodecConfig
from anoncodec.errors import ConfigError

__all__ = ["register_model", "list_models", "get_model"]

_MODELS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator adding an architecture under ``name``; a duplicate name is an error."""

    def decorator(cls: T) -> T:
        if name in _MODELS:
            raise ValueError(f"architecture {name!r} is already registered by {_MODELS[name].__name__}")
        _MODELS[name] = cls
        return cls

    return decorator


def list_models() -> list[str]:
    """Registered architecture names."""
    return sorted(_MODELS)


def get_model(config: CodecConfig):
    """Instantiate the architecture ``config.architecture`` with ``config``."""
    from anoncodec.codec import models  # noqa: F401 - registers the built-in architectures

    try:
        cls = _MODELS[config.architecture]
    except KeyError:
        raise ConfigError(
            f"unknown architecture {config.architecture!r}; registered: {list_models()}"
        ) from None
    return cls(config)
