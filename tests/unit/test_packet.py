import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anoncodec.errors import ModelMismatchError, PacketError
from anoncodec.packet import MAGIC, Packet, Stream, check_model_id, pack, padding, unpack

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
