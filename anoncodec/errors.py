"""Error hierarchy of anoncodec.

Stdlib only; every module may import it. Each error also inherits the builtin that
matches it, so callers that catch ``ValueError`` or ``ImportError`` keep working.
Messages state what was wrong, the value received, what was expected and the next step.

Packet and request errors also carry a machine-readable ``reason`` (a :class:`PacketReason`
code such as ``"truncated"``). Across a process boundary, where only text travels (a Triton
error message), :func:`tag` writes it in front of the message as ``[packet:truncated]`` and
:func:`parse_tag` reads it back.
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = [
    "PacketReason",
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
    "ExternalToolError",
    "tag",
    "parse_tag",
]


class PacketReason:
    """The ``reason`` codes of :class:`PacketError` (and of an :class:`InvalidRequestError`
    that refuses a packet's frame). Stable: clients, logs and the fuzzer match on them."""

    TYPE = "type"  #: not bytes, or a field of the wrong type
    TRUNCATED = "truncated"  #: shorter than its header or stream table
    MAGIC = "magic"  #: does not start with ``b"ANCP"``
    VERSION = "version"  #: unsupported format version
    CRC = "crc"  #: CRC32 mismatch (corrupted, truncated or extended)
    LENGTH = "length"  #: the stream table's lengths do not add up to the packet's size
    ARCHITECTURE = "architecture"  #: unknown architecture, or not the one this decoder serves
    FLAGS = "flags"  #: reserved flags set
    STREAMS = "streams"  #: stream count out of range, or not what the decoder expects
    LATENT_SHAPE = "latent-shape"  #: latent shape absurd or not the frame's
    FRAME_SIZE = "frame-size"  #: frame side outside 1..16384, or over the server's limits
    MODEL_ID = "model-id"  #: encoded by other weights (or a malformed id)
    PAYLOAD_LENGTH = "payload-length"  #: entropy-coded payload not a whole number of words
    ENTROPY = "entropy"  #: the range decoder failed, or decoded impossible values
    FRAME_TYPE = "frame-type"  #: unknown frame type, or streams that do not fit it (version 2)
    SKIP_MAP = "skip-map"  #: a delta frame's skip map cannot be read or does not fit the latent
    #: a delta frame does not apply to the decoder's state (lost, duplicated or reordered
    #: packet, another sequence, no keyframe yet): the camera must send a keyframe
    REFERENCE = "reference"

    @classmethod
    def codes(cls) -> frozenset[str]:
        """Every code."""
        return frozenset(v for k, v in vars(cls).items() if k.isupper())


class AnoncodecError(Exception):
    """Base class of every error anoncodec raises on purpose.

    Args:
        reason: machine-readable code of the failed check (see :class:`PacketReason`);
            None (the default) where the class does not name one.
    """

    #: family of the codes in a :func:`tag` (``"packet"``, ``"request"``); None: untagged
    family: ClassVar[str | None] = None
    #: reason of instances created without one
    default_reason: ClassVar[str | None] = None

    def __init__(self, *args: object, reason: str | None = None) -> None:
        super().__init__(*args)
        self.reason = reason if reason is not None else self.default_reason

    def __reduce__(self):  # keep ``reason`` across pickling (worker processes)
        return self.__class__, self.args, self.__dict__


class ConfigError(AnoncodecError, ValueError):
    """A configuration value (file, flag or dataclass field) is invalid."""


class PacketError(AnoncodecError, ValueError):
    """A packet is malformed: bad magic, unknown version, truncated, CRC mismatch, absurd shape.

    ``reason`` says which, as a :class:`PacketReason` code.
    """

    family = "packet"


class ModelMismatchError(PacketError):
    """A packet was encoded by other weights than the ones loaded to decode it."""

    default_reason = PacketReason.MODEL_ID


class DatasetError(AnoncodecError, ValueError):
    """A dataset, annotation file or media source cannot be read."""


class ExportError(AnoncodecError, RuntimeError):
    """A model cannot be exported, or the export does not match PyTorch."""


class MissingDependencyError(AnoncodecError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class ServerUnavailableError(AnoncodecError, ConnectionError):
    """The inference server cannot be reached or is not ready."""


class InvalidRequestError(AnoncodecError, ValueError):
    """A served request's tensor has the wrong dtype, shape or size (the client's fault).

    ``reason`` is set where a code applies (:data:`PacketReason.FRAME_SIZE`), else None.
    """

    family = "request"


class RequestRejectedError(AnoncodecError, RuntimeError):
    """The server answered a request with an error that retrying would not fix."""


class ExternalToolError(AnoncodecError, RuntimeError):
    """An external program the evaluation runs (ffmpeg) failed; the message ends with the
    tail of its stderr."""


_TAG = re.compile(r"\[([a-z]+):([a-z0-9-]+)\]")


def tag(exc: BaseException) -> str:
    """``"[packet:truncated] "`` for an error with a family and a reason, else ``""``.

    The server writes it in front of a rejection's message so that a client can tell
    the reason from the text alone (:func:`parse_tag`).
    """
    family, reason = getattr(exc, "family", None), getattr(exc, "reason", None)
    return f"[{family}:{reason}] " if family and reason else ""


def parse_tag(message: str) -> tuple[str, str] | None:
    """``(family, reason)`` of the first :func:`tag` in ``message`` (None if it has none)."""
    found = _TAG.search(message)
    return (found.group(1), found.group(2)) if found else None


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
