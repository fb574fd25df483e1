"""The packet: a small versioned binary container for one entropy-coded frame.

Stdlib only, so the camera can write packets without PyTorch. Layout (little endian)::

    offset  size  field
    0       4     magic  b"ANCP"
    4       1     format version (1)
    5       1     architecture code (1 = factorized, 2 = hyperprior)
    6       2     flags (reserved, must be 0)
    8       16    model id: hash of the weights and config that encoded the frame
    24      4     original image height H (pixels)
    28      4     original image width W (pixels)
    32      1     number of streams S (1 for factorized: y; 2 for hyperprior: y, z)
    33      10*S  per stream: latent shape C, h, w (uint16 each), payload length (uint32)
    ...           the S payloads, back to back
    end-4   4     CRC32 of every byte before it

Every malformed input raises :class:`~anoncodec.errors.PacketError` (never another
exception): wrong magic, unknown version, truncated data, trailing bytes, CRC mismatch,
absurd shapes. A packet from other weights raises
:class:`~anoncodec.errors.ModelMismatchError` in :func:`check_model_id`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from anoncodec.errors import ModelMismatchError, PacketError

__all__ = [
    "MAGIC",
    "VERSION",
    "MAX_SIDE",
    "Stream",
    "Packet",
    "pack",
    "unpack",
    "check_model_id",
    "padding",
]

MAGIC = b"ANCP"
VERSION = 1
MODEL_ID_BYTES = 16
MAX_SIDE = 16384  # largest accepted image side, pixels
MAX_STREAMS = 4
MAX_CHANNELS = 4096
MAX_SYMBOLS = 1 << 26  # latent elements per stream; 16384^2/16^2*192 is ~2e8/... far above real use

ARCH_CODES = {"factorized": 1, "hyperprior": 2}
ARCH_NAMES = {v: k for k, v in ARCH_CODES.items()}

_HEADER = struct.Struct("<4sBBH16sIIB")
_STREAM = struct.Struct("<HHHI")
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class Stream:
    """One entropy-coded latent tensor.

    Args:
        shape: latent shape ``(C, h, w)`` without the batch dimension.
        data: the entropy coder's bytes.
    """

    shape: tuple[int, int, int]
    data: bytes


@dataclass(frozen=True)
class Packet:
    """One encoded frame.

    Args:
        model_id: 16-byte hash of the weights (+config) that produced the streams.
        architecture: codec registry key (``"factorized"`` or ``"hyperprior"``).
        height: original image height in pixels, before padding.
        width: original image width in pixels, before padding.
        streams: entropy-coded latents (``y`` first, then ``z`` for the hyperprior).
    """

    model_id: bytes
    architecture: str
    height: int
    width: int
    streams: tuple[Stream, ...]

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def payload_bits(self) -> int:
        """Bits of the entropy-coded payloads (what rate/bpp measures)."""
        return 8 * sum(len(s.data) for s in self.streams)


def _validate(p: Packet) -> None:
    if not isinstance(p.model_id, bytes) or len(p.model_id) != MODEL_ID_BYTES:
        raise PacketError(f"model id must be {MODEL_ID_BYTES} bytes, got {p.model_id!r}")
    if p.architecture not in ARCH_CODES:
        raise PacketError(f"unknown architecture {p.architecture!r}; expected one of {sorted(ARCH_CODES)}")
    for name, side in (("height", p.height), ("width", p.width)):
        if not (isinstance(side, int) and 1 <= side <= MAX_SIDE):
            raise PacketError(f"image {name}={side!r}; expected 1..{MAX_SIDE}")
    if not 1 <= len(p.streams) <= MAX_STREAMS:
        raise PacketError(f"packet has {len(p.streams)} streams; expected 1..{MAX_STREAMS}")
    for i, s in enumerate(p.streams):
        if len(s.shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in s.shape):
            raise PacketError(f"stream {i}: latent shape {s.shape!r}; expected 3 positive ints (C, h, w)")
        c, h, w = s.shape
        if c > MAX_CHANNELS or h > p.height or w > p.width or c * h * w > MAX_SYMBOLS:
            raise PacketError(
                f"stream {i}: absurd latent shape {s.shape} for a {p.height}x{p.width} image"
            )
        if not isinstance(s.data, (bytes, bytearray)):
            raise PacketError(f"stream {i}: payload must be bytes, got {type(s.data).__name__}")


def pack(packet: Packet) -> bytes:
    """Serialize ``packet`` to bytes (header, stream table, payloads, CRC32)."""
    parts = [
        _HEADER.pack(
            MAGIC, VERSION, ARCH_CODES[packet.architecture], 0, packet.model_id,
            packet.height, packet.width, len(packet.streams),
        )
    ]
    parts += [_STREAM.pack(*s.shape, len(s.data)) for s in packet.streams]
    parts += [bytes(s.data) for s in packet.streams]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body) & 0xFFFFFFFF)


def unpack(data: bytes | bytearray | memoryview) -> Packet:
    """Parse and validate a packet.

    Raises:
        PacketError: for any malformed input, with what was wrong and what was expected.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PacketError(f"packet must be bytes, got {type(data).__name__}")
    data = bytes(data)
    minimum = _HEADER.size + _STREAM.size + _CRC.size
    if len(data) < minimum:
        raise PacketError(f"packet truncated: {len(data)} bytes, a packet has at least {minimum}")
    magic, version, arch, flags, model_id, height, width, n_streams = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError(f"not an anoncodec packet: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PacketError(
            f"unsupported packet format version {version}; this build reads version {VERSION} "
            "(upgrade anoncodec on the older side)"
        )
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    body = data[: -_CRC.size]
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise PacketError("packet CRC32 mismatch: the data was corrupted or truncated in transit")
    if arch not in ARCH_NAMES:
        raise PacketError(f"unknown architecture code {arch}; expected one of {sorted(ARCH_NAMES)}")
    if flags != 0:
        raise PacketError(f"reserved flags are {flags:#06x}; expected 0")
    if not 1 <= n_streams <= MAX_STREAMS:
        raise PacketError(f"packet declares {n_streams} streams; expected 1..{MAX_STREAMS}")
    table_end = _HEADER.size + n_streams * _STREAM.size
    if len(body) < table_end:
        raise PacketError(f"packet truncated inside the stream table ({len(body)} < {table_end} bytes)")
    entries = [_STREAM.unpack_from(body, _HEADER.size + i * _STREAM.size) for i in range(n_streams)]
    total = table_end + sum(e[3] for e in entries)
    if total != len(body):
        raise PacketError(
            f"packet length mismatch: stream table declares {total} bytes before the CRC, found {len(body)}"
        )
    streams, offset = [], table_end
    for c, h, w, length in entries:
        streams.append(Stream(shape=(c, h, w), data=body[offset : offset + length]))
        offset += length
    return Packet(
        model_id=model_id, architecture=ARCH_NAMES[arch], height=height, width=width,
        streams=tuple(streams),
    )


def check_model_id(packet: Packet, model_id: bytes) -> None:
    """Raise :class:`ModelMismatchError` unless ``packet`` was made by ``model_id``."""
    if packet.model_id != model_id:
        raise ModelMismatchError(
            f"packet was encoded by model {packet.model_id.hex()}, but the loaded weights are "
            f"{model_id.hex()}; decode with the checkpoint that encoded it"
        )


def padding(height: int, width: int, factor: int) -> tuple[int, int]:
    """Rows and columns to add (bottom, right) so both sides are multiples of ``factor``."""
    return (-height) % factor, (-width) % factor
