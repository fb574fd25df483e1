"""The packet: a small versioned binary container for one entropy-coded frame.

Stdlib only, so the camera can write packets without PyTorch. Layout (little endian;
:data:`HEADER_FIELDS`, :data:`SEQUENCE_FIELDS`, :data:`STREAM_FIELDS` and the ``*_SIZE``
constants name it for code that builds or inspects raw packets)::

    offset  size  field
    0       4     magic  b"ANCP"
    4       1     format version (1: a frame on its own; 2: a frame of a sequence)
    5       1     architecture code (1 = factorized, 2 = hyperprior)
    6       2     flags (reserved, must be 0)
    8       16    model id: hash of the weights and config that encoded the frame
    24      4     original image height H (pixels)
    28      4     original image width W (pixels)
    32      1     number of streams S (1 for factorized: y; 2 for hyperprior: y, z)
    (version 2 only: the sequence record, 13 bytes)
    33      1     frame type (0 keyframe, 1 delta)
    34      4     sequence id: chosen by the camera when it starts a sequence
    38      4     frame index within the sequence
    42      4     reference: the frame index a delta applies to (a keyframe: its own index)
    33|46   10*S  per stream: latent shape C, h, w (uint16 each), payload length (uint32)
    ...           the S payloads, back to back
    end-4   4     CRC32 of every byte before it

A keyframe has the streams of a version-1 packet. A delta frame (conditional
replenishment, :mod:`anoncodec.replenish`) has two: ``y`` with the full latent shape, whose
payload codes only the latent cells that changed, and the skip map ``(1, h, w)``. Packets
of frames on their own are still written as version 1, so older readers decode them.

Every malformed input raises :class:`~anoncodec.errors.PacketError` (never another
exception) whose ``reason`` names the failed check (:class:`~anoncodec.errors.PacketReason`):
wrong magic, unknown version, truncated data, trailing bytes, CRC mismatch, absurd shapes.
A packet from other weights raises :class:`~anoncodec.errors.ModelMismatchError` in
:func:`check_model_id`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from anoncodec.errors import ModelMismatchError, PacketError, PacketReason

__all__ = [
    "MAGIC",
    "VERSION",
    "MAX_SIDE",
    "Field",
    "HEADER_FIELDS",
    "SEQUENCE_FIELDS",
    "STREAM_FIELDS",
    "HEADER_SIZE",
    "SEQUENCE_SIZE",
    "STREAM_ENTRY_SIZE",
    "CRC_SIZE",
    "MIN_PACKET_SIZE",
    "header_field",
    "sequence_field",
    "stream_field",
    "seal",
    "PacketReason",
    "Stream",
    "FrameType",
    "SequenceInfo",
    "Packet",
    "pack",
    "unpack",
    "check_model_id",
    "padding",
]

MAGIC = b"ANCP"
VERSION = 2  #: the newest format version this build reads and writes
VERSIONS = (1, 2)
MODEL_ID_BYTES = 16
MAX_SIDE = 16384  # largest accepted image side, pixels
MAX_STREAMS = 4
MAX_CHANNELS = 4096
MAX_SYMBOLS = 1 << 26  # latent elements per stream; 16384^2/16^2*192 is ~2e8/... far above real use

ARCH_CODES = {"factorized": 1, "hyperprior": 2}
ARCH_NAMES = {v: k for k, v in ARCH_CODES.items()}


@dataclass(frozen=True)
class Field:
    """One fixed-size field of the layout.

    Args:
        name: field name (``"height"``).
        offset: byte offset from the start of its record (the packet, or a stream entry).
        format: :mod:`struct` code without byte order (``"I"``, ``"16s"``).
    """

    name: str
    offset: int
    format: str

    @property
    def size(self) -> int:
        """Bytes the field takes."""
        return struct.calcsize("<" + self.format)

    @property
    def max_value(self) -> int:
        """Largest value an integer field holds (``2**(8*size) - 1``)."""
        return (1 << (8 * self.size)) - 1

    def at(self, base: int) -> Field:
        """The same field in a record that starts at ``base``."""
        return Field(self.name, base + self.offset, self.format)

    def unpack_from(self, data: bytes | bytearray | memoryview):
        """The field's value in ``data``."""
        return struct.unpack_from("<" + self.format, data, self.offset)[0]

    def pack_into(self, buffer: bytearray, value) -> None:
        """Write ``value`` into ``buffer`` at the field's offset."""
        struct.pack_into("<" + self.format, buffer, self.offset, value)


def _record(*spec: tuple[str, str]) -> tuple[Field, ...]:
    fields, offset = [], 0
    for name, fmt in spec:
        fields.append(Field(name, offset, fmt))
        offset += fields[-1].size
    return tuple(fields)


#: the fixed header at the start of every packet
HEADER_FIELDS = _record(("magic", "4s"), ("version", "B"), ("architecture", "B"), ("flags", "H"),
                        ("model_id", f"{MODEL_ID_BYTES}s"), ("height", "I"), ("width", "I"), ("streams", "B"))
#: the sequence record of a version-2 packet (offsets relative to the record; it follows the header)
SEQUENCE_FIELDS = _record(("frame_type", "B"), ("sequence_id", "I"), ("frame_index", "I"),
                          ("reference_index", "I"))
#: one stream table entry (offsets relative to the entry; entries follow the header)
STREAM_FIELDS = _record(("channels", "H"), ("latent_h", "H"), ("latent_w", "H"), ("payload_length", "I"))

_HEADER = struct.Struct("<" + "".join(f.format for f in HEADER_FIELDS))
_SEQUENCE = struct.Struct("<" + "".join(f.format for f in SEQUENCE_FIELDS))
_STREAM = struct.Struct("<" + "".join(f.format for f in STREAM_FIELDS))
_CRC = struct.Struct("<I")

HEADER_SIZE = _HEADER.size  #: 33
SEQUENCE_SIZE = _SEQUENCE.size  #: 13
STREAM_ENTRY_SIZE = _STREAM.size  #: 10
CRC_SIZE = _CRC.size  #: 4
MIN_PACKET_SIZE = HEADER_SIZE + STREAM_ENTRY_SIZE + CRC_SIZE  #: one stream, empty payload


def header_field(name: str) -> Field:
    """The header field ``name`` (absolute offset)."""
    for f in HEADER_FIELDS:
        if f.name == name:
            return f
    raise KeyError(f"no header field {name!r}; expected one of {[f.name for f in HEADER_FIELDS]}")


def sequence_field(name: str) -> Field:
    """The sequence record's field ``name`` in a version-2 packet (absolute offset)."""
    for f in SEQUENCE_FIELDS:
        if f.name == name:
            return f.at(HEADER_SIZE)
    raise KeyError(f"no sequence field {name!r}; expected one of {[f.name for f in SEQUENCE_FIELDS]}")


def _table_start(version: int) -> int:
    return HEADER_SIZE + (SEQUENCE_SIZE if version >= 2 else 0)


def stream_field(index: int, name: str, version: int = 1) -> Field:
    """Field ``name`` of stream table entry ``index`` (absolute offset) in a packet of ``version``."""
    for f in STREAM_FIELDS:
        if f.name == name:
            return f.at(_table_start(version) + index * STREAM_ENTRY_SIZE)
    raise KeyError(f"no stream field {name!r}; expected one of {[f.name for f in STREAM_FIELDS]}")


def seal(body: bytes | bytearray) -> bytes:
    """``body`` followed by its CRC32: a packet's bytes from everything before the checksum."""
    return bytes(body) + _CRC.pack(zlib.crc32(body) & 0xFFFFFFFF)


@dataclass(frozen=True)
class Stream:
    """One entropy-coded latent tensor.

    Args:
        shape: latent shape ``(C, h, w)`` without the batch dimension.
        data: the entropy coder's bytes.
    """

    shape: tuple[int, int, int]
    data: bytes


class FrameType:
    """Frame types of a version-2 packet (``SequenceInfo.frame_type``)."""

    KEY = "key"  #: every latent cell coded; resets the decoder's state
    DELTA = "delta"  #: only the cells that changed since the reference frame


FRAME_TYPE_CODES = {FrameType.KEY: 0, FrameType.DELTA: 1}
FRAME_TYPE_NAMES = {v: k for k, v in FRAME_TYPE_CODES.items()}
_UINT32 = (1 << 32) - 1


@dataclass(frozen=True)
class SequenceInfo:
    """Where a frame sits in its camera's sequence (the version-2 record).

    Args:
        frame_type: :class:`FrameType` (``"key"`` or ``"delta"``).
        sequence_id: the camera's id of the sequence (a new one at every restart).
        frame_index: index of this frame in the sequence (0 for the first keyframe).
        reference_index: the frame a delta applies to (``frame_index - 1``); a keyframe's
            own index.
    """

    frame_type: str
    sequence_id: int
    frame_index: int
    reference_index: int

    def __post_init__(self) -> None:
        if self.frame_type not in FRAME_TYPE_CODES:
            raise PacketError(f"unknown frame type {self.frame_type!r}; expected one of {sorted(FRAME_TYPE_CODES)}",
                              reason=PacketReason.FRAME_TYPE)
        for name in ("sequence_id", "frame_index", "reference_index"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 0 <= value <= _UINT32):
                raise PacketError(f"{name}={value!r}; expected an integer in 0..{_UINT32}",
                                  reason=PacketReason.FRAME_TYPE)
        if self.frame_type == FrameType.KEY and self.reference_index != self.frame_index:
            raise PacketError(f"a keyframe references itself: reference {self.reference_index} != "
                              f"frame {self.frame_index}", reason=PacketReason.FRAME_TYPE)
        if self.frame_type == FrameType.DELTA and self.reference_index >= self.frame_index:
            raise PacketError(f"a delta frame references an earlier frame: reference {self.reference_index} "
                              f">= frame {self.frame_index}", reason=PacketReason.FRAME_TYPE)

    @property
    def is_key(self) -> bool:
        return self.frame_type == FrameType.KEY


@dataclass(frozen=True)
class Packet:
    """One encoded frame.

    Args:
        model_id: 16-byte hash of the weights (+config) that produced the streams.
        architecture: codec registry key (``"factorized"`` or ``"hyperprior"``).
        height: original image height in pixels, before padding.
        width: original image width in pixels, before padding.
        streams: entropy-coded latents (``y`` first, then ``z`` for the hyperprior; a delta
            frame: ``y``'s changed cells, then the skip map).
        sequence: the frame's place in a sequence (written as version 2); None (the
            default) for a frame on its own (version 1).
    """

    model_id: bytes
    architecture: str
    height: int
    width: int
    streams: tuple[Stream, ...]
    sequence: SequenceInfo | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def payload_bits(self) -> int:
        """Bits of the entropy-coded payloads (what rate/bpp measures)."""
        return 8 * sum(len(s.data) for s in self.streams)

    @property
    def version(self) -> int:
        """Format version :func:`pack` writes: 2 for a frame of a sequence, else 1."""
        return 1 if self.sequence is None else 2

    @property
    def is_delta(self) -> bool:
        """A delta frame (decodes only against its reference)."""
        return self.sequence is not None and not self.sequence.is_key


def _validate(p: Packet) -> None:
    if not isinstance(p.model_id, bytes) or len(p.model_id) != MODEL_ID_BYTES:
        raise PacketError(f"model id must be {MODEL_ID_BYTES} bytes, got {p.model_id!r}",
                          reason=PacketReason.MODEL_ID)
    if p.architecture not in ARCH_CODES:
        raise PacketError(f"unknown architecture {p.architecture!r}; expected one of {sorted(ARCH_CODES)}",
                          reason=PacketReason.ARCHITECTURE)
    for name, side in (("height", p.height), ("width", p.width)):
        if not (isinstance(side, int) and 1 <= side <= MAX_SIDE):
            raise PacketError(f"image {name}={side!r}; expected 1..{MAX_SIDE}", reason=PacketReason.FRAME_SIZE)
    if not 1 <= len(p.streams) <= MAX_STREAMS:
        raise PacketError(f"packet has {len(p.streams)} streams; expected 1..{MAX_STREAMS}",
                          reason=PacketReason.STREAMS)
    for i, s in enumerate(p.streams):
        if len(s.shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in s.shape):
            raise PacketError(f"stream {i}: latent shape {s.shape!r}; expected 3 positive ints (C, h, w)",
                              reason=PacketReason.LATENT_SHAPE)
        c, h, w = s.shape
        if c > MAX_CHANNELS or h > p.height or w > p.width or c * h * w > MAX_SYMBOLS:
            raise PacketError(
                f"stream {i}: absurd latent shape {s.shape} for a {p.height}x{p.width} image",
                reason=PacketReason.LATENT_SHAPE,
            )
        if not isinstance(s.data, (bytes, bytearray)):
            raise PacketError(f"stream {i}: payload must be bytes, got {type(s.data).__name__}",
                              reason=PacketReason.TYPE)
    if p.sequence is not None:
        _validate_sequence(p)


def _validate_sequence(p: Packet) -> None:
    if not isinstance(p.sequence, SequenceInfo):
        raise PacketError(f"sequence must be a SequenceInfo, got {type(p.sequence).__name__}",
                          reason=PacketReason.TYPE)
    if p.architecture != "factorized":
        raise PacketError(f"sequences are coded with the factorized prior only, not {p.architecture!r}",
                          reason=PacketReason.ARCHITECTURE)
    expected = 2 if p.is_delta else 1
    if len(p.streams) != expected:
        raise PacketError(f"a {p.sequence.frame_type} frame has {expected} stream(s), got {len(p.streams)}",
                          reason=PacketReason.FRAME_TYPE)
    if p.is_delta and p.streams[1].shape != (1, *p.streams[0].shape[1:]):
        raise PacketError(f"skip map shape {p.streams[1].shape} does not fit the latent {p.streams[0].shape}; "
                          f"expected {(1, *p.streams[0].shape[1:])}", reason=PacketReason.SKIP_MAP)


def pack(packet: Packet) -> bytes:
    """Serialize ``packet`` to bytes (header, stream table, payloads, CRC32)."""
    parts = [
        _HEADER.pack(
            MAGIC, packet.version, ARCH_CODES[packet.architecture], 0, packet.model_id,
            packet.height, packet.width, len(packet.streams),
        )
    ]
    if packet.sequence is not None:
        seq = packet.sequence
        parts.append(_SEQUENCE.pack(FRAME_TYPE_CODES[seq.frame_type], seq.sequence_id, seq.frame_index,
                                    seq.reference_index))
    parts += [_STREAM.pack(*s.shape, len(s.data)) for s in packet.streams]
    parts += [bytes(s.data) for s in packet.streams]
    return seal(b"".join(parts))


def unpack(data: bytes | bytearray | memoryview) -> Packet:
    """Parse and validate a packet.

    Raises:
        PacketError: for any malformed input, with what was wrong and what was expected;
            its ``reason`` is the :class:`~anoncodec.errors.PacketReason` code of the check.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PacketError(f"packet must be bytes, got {type(data).__name__}", reason=PacketReason.TYPE)
    data = bytes(data)
    if len(data) < MIN_PACKET_SIZE:
        raise PacketError(f"packet truncated: {len(data)} bytes, a packet has at least {MIN_PACKET_SIZE}",
                          reason=PacketReason.TRUNCATED)
    magic, version, arch, flags, model_id, height, width, n_streams = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError(f"not an anoncodec packet: magic {magic!r}, expected {MAGIC!r}",
                          reason=PacketReason.MAGIC)
    if version not in VERSIONS:
        raise PacketError(
            f"unsupported packet format version {version}; this build reads versions "
            f"{', '.join(map(str, VERSIONS))} (upgrade anoncodec on the older side)",
            reason=PacketReason.VERSION,
        )
    (crc,) = _CRC.unpack_from(data, len(data) - CRC_SIZE)
    body = data[:-CRC_SIZE]
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise PacketError("packet CRC32 mismatch: the data was corrupted or truncated in transit",
                          reason=PacketReason.CRC)
    if arch not in ARCH_NAMES:
        raise PacketError(f"unknown architecture code {arch}; expected one of {sorted(ARCH_NAMES)}",
                          reason=PacketReason.ARCHITECTURE)
    if flags != 0:
        raise PacketError(f"reserved flags are {flags:#06x}; expected 0", reason=PacketReason.FLAGS)
    if not 1 <= n_streams <= MAX_STREAMS:
        raise PacketError(f"packet declares {n_streams} streams; expected 1..{MAX_STREAMS}",
                          reason=PacketReason.STREAMS)
    table_start = _table_start(version)
    table_end = table_start + n_streams * STREAM_ENTRY_SIZE
    if len(body) < table_end:
        raise PacketError(f"packet truncated inside the stream table ({len(body)} < {table_end} bytes)",
                          reason=PacketReason.TRUNCATED)
    sequence = _unpack_sequence(body) if version >= 2 else None
    entries = [_STREAM.unpack_from(body, table_start + i * STREAM_ENTRY_SIZE) for i in range(n_streams)]
    total = table_end + sum(e[3] for e in entries)
    if total != len(body):
        raise PacketError(
            f"packet length mismatch: stream table declares {total} bytes before the CRC, found {len(body)}",
            reason=PacketReason.LENGTH,
        )
    streams, offset = [], table_end
    for c, h, w, length in entries:
        streams.append(Stream(shape=(c, h, w), data=body[offset : offset + length]))
        offset += length
    return Packet(
        model_id=model_id, architecture=ARCH_NAMES[arch], height=height, width=width,
        streams=tuple(streams), sequence=sequence,
    )


def _unpack_sequence(body: bytes) -> SequenceInfo:
    code, sequence_id, frame_index, reference_index = _SEQUENCE.unpack_from(body, HEADER_SIZE)
    if code not in FRAME_TYPE_NAMES:
        raise PacketError(f"unknown frame type code {code}; expected one of {sorted(FRAME_TYPE_NAMES)}",
                          reason=PacketReason.FRAME_TYPE)
    return SequenceInfo(FRAME_TYPE_NAMES[code], sequence_id, frame_index, reference_index)


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
