import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anoncodec.errors import ModelMismatchError, PacketError, PacketReason
from anoncodec.packet import (
    CRC_SIZE,
    HEADER_FIELDS,
    HEADER_SIZE,
    MAGIC,
    MIN_PACKET_SIZE,
    STREAM_ENTRY_SIZE,
    STREAM_FIELDS,
    Packet,
    Stream,
    check_model_id,
    header_field,
    pack,
    padding,
    seal,
    stream_field,
    unpack,
)

MODEL = bytes(range(16))


def make_packet(**kw) -> Packet:
    args = dict(model_id=MODEL, architecture="factorized", height=48, width=70,
                streams=(Stream((12, 3, 5), b"\x01\x02\x03\x04payload"),))
    args.update(kw)
    return Packet(**args)


def recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def test_round_trip_keeps_every_field():
    p = make_packet(architecture="hyperprior", streams=(Stream((12, 4, 8), b"y" * 9), Stream((8, 1, 2), b"z")))
    assert unpack(pack(p)) == p
    assert unpack(bytearray(pack(p))) == p


def test_layout_starts_with_magic_and_version():
    data = pack(make_packet())
    assert data[:4] == MAGIC and data[4] == 1
    assert len(data) == 33 + 10 + 11 + 4


@pytest.mark.parametrize("cut", [0, 1, 10, 32, 40, 50])
def test_truncated_is_rejected(cut):
    data = pack(make_packet())
    with pytest.raises(PacketError):
        unpack(data[:cut])


def test_every_truncation_and_extension_is_rejected():
    data = pack(make_packet())
    for n in range(len(data)):
        with pytest.raises(PacketError):
            unpack(data[:n])
    with pytest.raises(PacketError, match="CRC"):
        unpack(data + b"\x00")


def test_wrong_magic():
    data = bytearray(pack(make_packet()))
    data[:4] = b"JPEG"
    with pytest.raises(PacketError, match="magic"):
        unpack(bytes(data))


def test_wrong_version_even_with_valid_crc():
    body = bytearray(pack(make_packet())[:-4])
    body[4] = 9
    with pytest.raises(PacketError, match="version 9"):
        unpack(recrc(bytes(body)))


def test_bit_flip_fails_crc():
    data = bytearray(pack(make_packet()))
    data[-6] ^= 0x10
    with pytest.raises(PacketError, match="CRC"):
        unpack(bytes(data))


def test_absurd_shapes_rejected_even_with_valid_crc():
    body = bytearray(pack(make_packet())[:-4])
    struct.pack_into("<HHH", body, 33, 4000, 60000, 60000)  # latent bigger than the image
    with pytest.raises(PacketError, match="absurd"):
        unpack(recrc(bytes(body)))
    body = bytearray(pack(make_packet())[:-4])
    struct.pack_into("<I", body, 24, 0)  # height 0
    with pytest.raises(PacketError, match="height"):
        unpack(recrc(bytes(body)))


def test_declared_lengths_must_match():
    body = bytearray(pack(make_packet())[:-4])
    struct.pack_into("<I", body, 39, 1000)
    with pytest.raises(PacketError, match="length"):
        unpack(recrc(bytes(body)))


def test_model_id_mismatch():
    p = make_packet()
    check_model_id(p, MODEL)
    with pytest.raises(ModelMismatchError, match=MODEL.hex()):
        check_model_id(p, bytes(16))
    assert issubclass(ModelMismatchError, PacketError)


def test_invalid_packets_cannot_be_built():
    with pytest.raises(PacketError):
        make_packet(model_id=b"short")
    with pytest.raises(PacketError):
        make_packet(architecture="jpeg")
    with pytest.raises(PacketError):
        make_packet(streams=())


def test_not_bytes():
    with pytest.raises(PacketError):
        unpack("ANCP")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_packet_error(data):
    try:
        unpack(data)
    except PacketError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 10_000))
def test_random_corruption_of_valid_packet(seed, where):
    rng = random.Random(seed)
    data = bytearray(pack(make_packet()))
    for _ in range(rng.randint(1, 4)):
        data[(where + rng.randrange(len(data))) % len(data)] = rng.randrange(256)
    try:
        assert unpack(bytes(data)) is not None
    except PacketError:
        pass


def test_padding():
    assert padding(64, 64, 16) == (0, 0)
    assert padding(70, 33, 16) == (10, 15)


# -- the layout and the reason codes ---------------------------------------------------


def test_layout_constants_describe_the_documented_offsets():
    offsets = {f.name: (f.offset, f.size) for f in HEADER_FIELDS}
    assert offsets == {"magic": (0, 4), "version": (4, 1), "architecture": (5, 1), "flags": (6, 2),
                       "model_id": (8, 16), "height": (24, 4), "width": (28, 4), "streams": (32, 1)}
    assert [(f.name, f.offset, f.size) for f in STREAM_FIELDS] == [
        ("channels", 0, 2), ("latent_h", 2, 2), ("latent_w", 4, 2), ("payload_length", 6, 4)]
    assert (HEADER_SIZE, STREAM_ENTRY_SIZE, CRC_SIZE, MIN_PACKET_SIZE) == (33, 10, 4, 47)
    assert stream_field(1, "latent_w").offset == 33 + 10 + 4
    with pytest.raises(KeyError):
        header_field("colour")


def test_fields_read_and_write_a_real_packet():
    p = make_packet(height=48, width=70)
    data = pack(p)
    assert header_field("magic").unpack_from(data) == MAGIC
    assert (header_field("height").unpack_from(data), header_field("width").unpack_from(data)) == (48, 70)
    assert header_field("model_id").unpack_from(data) == MODEL
    s = p.streams[0]
    assert tuple(stream_field(0, n).unpack_from(data) for n in ("channels", "latent_h", "latent_w")) == s.shape
    assert stream_field(0, "payload_length").unpack_from(data) == len(s.data)
    assert seal(data[:-CRC_SIZE]) == data
    body = bytearray(data[:-CRC_SIZE])
    header_field("width").pack_into(body, 64)
    assert unpack(seal(body)).width == 64
    assert header_field("flags").max_value == 0xFFFF


def _field(name: str, value, data: bytes | None = None, stream: int | None = None) -> bytes:
    """A packet (``make_packet`` by default) with one field changed and its CRC recomputed."""
    body = bytearray((data or pack(make_packet()))[:-CRC_SIZE])
    (header_field(name) if stream is None else stream_field(stream, name)).pack_into(body, value)
    return seal(body)


def _flipped_payload() -> bytes:
    data = bytearray(pack(make_packet()))
    data[-CRC_SIZE - 1] ^= 0x10
    return bytes(data)


# every rejection of unpack(): the bytes and the reason code it must carry
UNPACK_REJECTIONS = {
    "not bytes": ("ANCP", PacketReason.TYPE),
    "empty": (b"", PacketReason.TRUNCATED),
    "shorter than a header and one stream": (pack(make_packet())[: MIN_PACKET_SIZE - 1], PacketReason.TRUNCATED),
    "wrong magic": (_field("magic", b"JPEG"), PacketReason.MAGIC),
    "unknown version": (_field("version", 9), PacketReason.VERSION),
    "flipped payload bit": (_flipped_payload(), PacketReason.CRC),
    "one byte appended": (pack(make_packet()) + b"\x00", PacketReason.CRC),
    "unknown architecture code": (_field("architecture", 7), PacketReason.ARCHITECTURE),
    "reserved flags set": (_field("flags", 1), PacketReason.FLAGS),
    "no stream": (_field("streams", 0), PacketReason.STREAMS),
    "too many streams": (_field("streams", 5), PacketReason.STREAMS),
    "stream table cut off": (_field("streams", 4), PacketReason.TRUNCATED),
    "declared payload longer": (_field("payload_length", 1000, stream=0), PacketReason.LENGTH),
    "zero height": (_field("height", 0), PacketReason.FRAME_SIZE),
    "width over 16384": (_field("width", 16385), PacketReason.FRAME_SIZE),
    "zero channels": (_field("channels", 0, stream=0), PacketReason.LATENT_SHAPE),
    "latent larger than the image": (_field("latent_h", 60000, stream=0), PacketReason.LATENT_SHAPE),
}


@pytest.mark.parametrize("case", list(UNPACK_REJECTIONS))
def test_each_unpack_rejection_carries_its_reason_code(case):
    data, reason = UNPACK_REJECTIONS[case]
    with pytest.raises(PacketError) as caught:
        unpack(data)
    assert caught.value.reason == reason, (case, str(caught.value))


@pytest.mark.parametrize("fields, reason", [
    ({"model_id": b"short"}, PacketReason.MODEL_ID),
    ({"architecture": "jpeg"}, PacketReason.ARCHITECTURE),
    ({"height": 0}, PacketReason.FRAME_SIZE),
    ({"width": 16385}, PacketReason.FRAME_SIZE),
    ({"streams": ()}, PacketReason.STREAMS),
    ({"streams": (Stream((12, 3), b""),)}, PacketReason.LATENT_SHAPE),
    ({"streams": (Stream((12, 3, 5), "text"),)}, PacketReason.TYPE),
])
def test_each_invalid_packet_field_carries_its_reason_code(fields, reason):
    with pytest.raises(PacketError) as caught:
        make_packet(**fields)
    assert caught.value.reason == reason


def test_a_foreign_model_id_carries_the_model_id_code():
    with pytest.raises(ModelMismatchError) as caught:
        check_model_id(make_packet(), bytes(16))
    assert caught.value.reason == PacketReason.MODEL_ID


def test_every_code_is_tested_here_or_by_the_entropy_coder():
    tested = {r for _, r in UNPACK_REJECTIONS.values()} | {PacketReason.MODEL_ID}
    # the sequence codes are tested in test_replenish.py
    assert PacketReason.codes() - tested == {PacketReason.PAYLOAD_LENGTH, PacketReason.ENTROPY,
                                             PacketReason.FRAME_TYPE, PacketReason.SKIP_MAP, PacketReason.REFERENCE}
