"""Conditional replenishment (anoncodec.replenish) and version-2 packets: round trips, loss
and resync, reordering and duplicates refused, fuzzed deltas, bounded states."""

import numpy as np
import pytest

from anoncodec.entropy_coder import CategoricalCoder, FactorizedTables
from anoncodec.errors import ConfigError, ModelMismatchError, PacketError, PacketReason
from anoncodec.packet import (
    HEADER_SIZE,
    FrameType,
    Packet,
    SequenceInfo,
    Stream,
    pack,
    seal,
    sequence_field,
    stream_field,
    unpack,
)
from anoncodec.replenish import (
    ReplenishConfig,
    ReplenishDecoder,
    ReplenishEncoder,
    changed_cells,
    pack_skip_map,
    unpack_skip_map,
)

C, H, W = 6, 5, 7  # latent channels and cells; frames of 80x112 pixels at downsampling 16


def tables(model_id: bytes = b"m" * 16) -> FactorizedTables:
    pmf = np.array([200, 2000, 60000, 2000, 200, 100])  # symbols -2..2 around the median, + escape
    return FactorizedTables(medians=np.linspace(-0.3, 0.3, C).astype(np.float32),
                            coder=CategoricalCoder(pmfs=[pmf] * C, offsets=np.full(C, -2)), model_id=model_id)


def latents(n: int, seed: int = 0) -> list[np.ndarray]:
    """A static scene (a fixed latent) with one moving blob of change."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1.5, (C, H, W)).astype(np.float32)
    out = []
    for i in range(n):
        y = base + rng.normal(0, 0.05, base.shape).astype(np.float32)  # sensor noise: sub-threshold
        y[:, 1:3, i % W] += 3.0  # the moving object
        out.append(y)
    return out


def stream(config=ReplenishConfig(keyframe_interval=100, threshold=0.3), n=8, seed=0):
    t = tables()
    enc = ReplenishEncoder(t, config)
    return t, enc, [pack(enc.encode(y, 80, 112)) for y in latents(n, seed)]


def test_a_sequence_round_trips_bit_exactly_and_deltas_are_small():
    t, enc, packets = stream()
    dec = ReplenishDecoder(t)
    check = ReplenishEncoder(t, ReplenishConfig(keyframe_interval=100, threshold=0.3))
    for i, (data, y) in enumerate(zip(packets, latents(8))):
        p = unpack(data)
        assert p.version == 2 and p.sequence.frame_index == i
        assert p.sequence.frame_type == (FrameType.KEY if i == 0 else FrameType.DELTA)
        y_hat = dec.decode(p)
        check.encode(y, 80, 112)
        assert np.array_equal(y_hat, check.reference_latent())
    sizes = [len(d) for d in packets]
    assert max(sizes[1:]) < 0.7 * sizes[0], sizes
    # the moving object's cells are sent, the static noisy background is not
    last = unpack(packets[-1])
    sent = unpack_skip_map(last.streams[1].data, (H, W))
    assert sent[1:3, 7 % W].all() and sent.sum() <= 2 * 2 + 2


def test_threshold_zero_decodes_exactly_like_intra():
    t, enc, packets = stream(ReplenishConfig(keyframe_interval=100, threshold=0.0))
    dec = ReplenishDecoder(t)
    for data, y in zip(packets, latents(8)):
        intra, y_intra = t.encode(y)
        assert np.array_equal(dec.decode(unpack(data)), y_intra)


def test_keyframes_every_interval_and_on_request():
    t = tables()
    enc = ReplenishEncoder(t, ReplenishConfig(keyframe_interval=3, threshold=0.3))
    types = [enc.encode(y, 80, 112).sequence.frame_type for y in latents(7)]
    assert types == ["key", "delta", "delta", "key", "delta", "delta", "key"]
    enc.request_keyframe()
    assert enc.encode(latents(1)[0], 80, 112).sequence.is_key
    every = ReplenishEncoder(t, ReplenishConfig(keyframe_interval=1))
    assert all(every.encode(y, 80, 112).sequence.is_key for y in latents(3))


def test_a_lost_packet_is_refused_until_a_keyframe_resyncs():
    t, enc, packets = stream()
    dec = ReplenishDecoder(t)
    dec.decode(unpack(packets[0]))
    before = dec.decode(unpack(packets[1]))
    with pytest.raises(PacketError) as caught:  # packets[2] was lost
        dec.decode(unpack(packets[3]))
    assert caught.value.reason == PacketReason.REFERENCE and "send a keyframe" in str(caught.value)
    assert dec.frame_index == 1 and np.array_equal(dec.decode(unpack(packets[2])), replay(t, packets[:3]))
    # the camera answers with a keyframe: the sequence goes on from it
    enc.request_keyframe()
    key = enc.encode(latents(9)[8], 80, 112)
    assert key.sequence.is_key and np.array_equal(dec.decode(unpack(pack(key))), enc.reference_latent())
    assert not np.array_equal(before, enc.reference_latent())


def replay(t, packets):
    """The latent a fresh decoder holds after ``packets``."""
    dec = ReplenishDecoder(t)
    for p in packets:
        y = dec.decode(unpack(p))
    return y


@pytest.mark.parametrize("order", [[0, 1, 1], [0, 2, 1], [0, 1, 2, 1, 3], [1, 0, 1], [0, 1, 0, 1]])
def test_duplicated_reordered_or_orphan_deltas_never_decode(order):
    t, _, packets = stream()
    dec = ReplenishDecoder(t)
    last = -1
    for k in order:
        p = unpack(packets[k])
        if p.sequence.is_key or k == last + 1:
            assert np.array_equal(dec.decode(p), replay(t, packets[: k + 1]))
            last = k
            continue
        with pytest.raises(PacketError) as caught:
            dec.decode(p)
        assert caught.value.reason == PacketReason.REFERENCE
        assert dec.frame_index == last


def test_another_sequence_or_a_restart_is_refused():
    t, enc, packets = stream()
    dec = ReplenishDecoder(t)
    dec.decode(unpack(packets[0]))
    other = ReplenishEncoder(t, ReplenishConfig(keyframe_interval=100, threshold=0.3))
    other.encode(latents(1, seed=3)[0], 80, 112)
    delta = other.encode(latents(2, seed=3)[1], 80, 112)
    assert delta.sequence.sequence_id != unpack(packets[0]).sequence.sequence_id
    with pytest.raises(PacketError, match="belongs to sequence") as caught:
        dec.decode(delta)
    assert caught.value.reason == PacketReason.REFERENCE
    dec.reset()
    with pytest.raises(PacketError, match="no keyframe"):
        dec.decode(unpack(packets[1]))


def test_version_1_packets_still_unpack_and_a_sequence_refuses_them():
    t = tables()
    payload, _ = t.encode(latents(1)[0])
    v1 = Packet(t.model_id, "factorized", 80, 112, (Stream((C, H, W), payload),))
    data = pack(v1)
    assert data[4] == 1 and unpack(data) == v1 and unpack(data).sequence is None
    with pytest.raises(PacketError) as caught:
        ReplenishDecoder(t).decode(v1)
    assert caught.value.reason == PacketReason.FRAME_TYPE
    with pytest.raises(ModelMismatchError):
        ReplenishDecoder(tables(b"x" * 16)).decode(unpack(stream()[2][0]))


def test_the_sequence_record_layout():
    _, _, packets = stream()
    delta = packets[1]
    assert delta[4] == 2
    assert sequence_field("frame_type").unpack_from(delta) == 1
    assert sequence_field("frame_index").unpack_from(delta) == 1
    assert sequence_field("reference_index").unpack_from(delta) == 0
    assert sequence_field("frame_type").offset == HEADER_SIZE
    assert stream_field(1, "channels", version=2).unpack_from(delta) == 1
    assert stream_field(0, "latent_w", version=2).unpack_from(delta) == W


def _patched(data: bytes, field, value) -> bytes:
    body = bytearray(data[:-4])
    field.pack_into(body, value)
    return seal(body)


@pytest.mark.parametrize("field, value, reason", [
    ("frame_type", 7, PacketReason.FRAME_TYPE),
    ("reference_index", 5, PacketReason.FRAME_TYPE),  # a delta on a later frame
])
def test_bad_sequence_records_are_refused_with_their_code(field, value, reason):
    _, _, packets = stream()
    with pytest.raises(PacketError) as caught:
        unpack(_patched(packets[1], sequence_field(field), value))
    assert caught.value.reason == reason


def test_sequence_info_and_packet_validation():
    with pytest.raises(PacketError):
        SequenceInfo("key", 1, 3, 2)
    with pytest.raises(PacketError):
        SequenceInfo("delta", 1, 0, 0)
    with pytest.raises(PacketError):
        SequenceInfo("delta", -1, 1, 0)
    t = tables()
    y = Stream((C, H, W), b"")
    with pytest.raises(PacketError) as caught:  # a delta needs its skip map
        Packet(t.model_id, "factorized", 80, 112, (y,), SequenceInfo("delta", 1, 1, 0))
    assert caught.value.reason == PacketReason.FRAME_TYPE
    with pytest.raises(PacketError) as caught:
        Packet(t.model_id, "factorized", 80, 112, (y, Stream((1, H, W + 1), b"")), SequenceInfo("delta", 1, 1, 0))
    assert caught.value.reason == PacketReason.SKIP_MAP
    with pytest.raises(PacketError) as caught:
        Packet(t.model_id, "hyperprior", 80, 112, (y, y), SequenceInfo("key", 1, 0, 0))
    assert caught.value.reason == PacketReason.ARCHITECTURE


def test_skip_map_round_trip_and_its_malformed_inputs():
    mask = np.random.default_rng(0).random((H, W)) < 0.3
    assert np.array_equal(unpack_skip_map(pack_skip_map(mask), (H, W)), mask)
    import zlib

    bad = {
        "not zlib": b"\x00\x01\x02",
        "too short": zlib.compress(b"\x00"),
        "too long": zlib.compress(b"\x00" * 6),
        "bits past the last cell": zlib.compress(b"\x00" * 4 + b"\x01"),
        "a bomb": zlib.compress(b"\x00" * 10_000_000),
        "trailing data": pack_skip_map(mask) + b"xx",
    }
    for name, data in bad.items():
        with pytest.raises(PacketError) as caught:
            unpack_skip_map(data, (H, W))
        assert caught.value.reason == PacketReason.SKIP_MAP, name


def test_fuzzed_deltas_raise_packet_errors_and_leave_the_state():
    t, _, packets = stream()
    rng = np.random.default_rng(1)
    dec = ReplenishDecoder(t)
    dec.decode(unpack(packets[0]))
    state = replay(t, packets[:1])
    for _ in range(300):
        data = bytearray(packets[1][:-4])
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        try:
            p = unpack(seal(data))
        except PacketError:
            continue
        try:
            dec.decode(p)
        except PacketError:
            assert np.array_equal(t.dequantize(dec._state), state) and dec.frame_index == 0
            continue
        dec = ReplenishDecoder(t)  # a mutation that still decodes (payload bits): start over
        dec.decode(unpack(packets[0]))


def test_the_guard_cells_are_forced_to_the_medians():
    t = tables()
    enc = ReplenishEncoder(t, ReplenishConfig(keyframe_interval=100, threshold=10.0))  # nothing moves enough
    ys = latents(3)
    enc.encode(ys[0], 80, 112)
    head = np.zeros((H, W), bool)
    head[2:4, 2:4] = True
    guarded = ys[1].copy()
    guarded[:, head] = t.medians[:, None]
    delta = enc.encode(guarded, 80, 112, forced=head)
    assert unpack_skip_map(delta.streams[1].data, (H, W))[head].all()
    held = enc.reference_latent()
    assert np.allclose(held[:, head], t.medians[:, None])
    assert changed_cells(guarded, np.rint(guarded - t.medians[:, None, None]).astype(np.int32),
                         enc._state, t, 10.0, head).sum() == 0  # once at the medians, nothing to resend


def test_config_validation():
    with pytest.raises(ConfigError):
        ReplenishConfig(keyframe_interval=0)
    with pytest.raises(ConfigError):
        ReplenishConfig(threshold=-1)
    with pytest.raises(ConfigError):
        ReplenishConfig(threshold=float("nan"))


def test_state_memory_is_the_latent_symbols():
    t, _, packets = stream()
    dec = ReplenishDecoder(t)
    assert dec.state_bytes == 0
    dec.decode(unpack(packets[0]))
    assert dec.state_bytes == C * H * W * 4


def test_the_torch_codec_decodes_keyframes_and_refuses_deltas():
    from tests.conftest import tiny_codec

    model = tiny_codec("factorized")
    t = model.entropy_tables()
    enc = ReplenishEncoder(t, ReplenishConfig(keyframe_interval=10, threshold=0.0))
    import torch

    x = torch.rand(1, 3, 64, 64)
    y = model.encoder_module()(x)[0].detach().numpy()
    key = unpack(pack(enc.encode(y, 64, 64)))
    assert torch.equal(model.decompress(key), model.decompress(model.compress(x)))
    with pytest.raises(PacketError) as caught:
        model.decompress(unpack(pack(enc.encode(y, 64, 64))))
    assert caught.value.reason == PacketReason.FRAME_TYPE
