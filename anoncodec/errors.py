"""Error hierarchy of anoncodec.

Stdlib only; every module may import it. Each error also inherits the builtin that
matches it, so callers that catch ``ValueError`` or ``ImportError`` keep working.
Messages state what was wrong, the value received, what was expected and the next step.
"""

from __future__ import annotations

__all__ = [
    "AnoncodecError",
    "ConfigError",
    "PacketError",
    "ModelMismatchError",
    "DatasetError",
    "ExportError",
    "MissingDependencyError",
    "ServerUnavailableError",
    "InvalidRequestError",
    "RequestRejectedError",
]


class AnoncodecError(Exception):
    """Base class of every error anoncodec raises on purpose."""


class ConfigError(AnoncodecError, ValueError):
    """A configuration value (file, flag or dataclass field) is invalid."""


class PacketError(AnoncodecError, ValueError):
    """A packet is malformed: bad magic, unknown version, truncated, CRC mismatch, absurd shape."""


class ModelMismatchError(PacketError):
    """A packet was encoded by other weights than the ones loaded to decode it."""


class DatasetError(AnoncodecError, ValueError):
    """A dataset, annotation file or media source cannot be read."""


class ExportError(AnoncodecError, RuntimeError):
    """A model cannot be exported, or the export does not match PyTorch."""


class MissingDependencyError(AnoncodecError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class ServerUnavailableError(AnoncodecError, ConnectionError):
    """The inference server cannot be reached or is not ready."""


class InvalidRequestError(AnoncodecError, ValueError):
    """A served request's tensor has the wrong dtype, shape or size (the client's fault)."""


class RequestRejectedError(AnoncodecError, RuntimeError):
    """The server answered a request with an error that retrying would not fix."""


def require(module: str, extra: str):
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module!r} is not installed ({exc}); install it with "
            f"`pip install -c constraints.txt 'anoncodec[{extra}]'` or run `make test` once"
        ) from exc
