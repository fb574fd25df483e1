"""The server's sequence states (anoncodec.serving.sequences): bounded in number, bytes and
idle time; START resets, END frees, a refused delta keeps the state."""

import numpy as np
import pytest

from anoncodec.errors import ConfigError, InvalidRequestError, PacketError, PacketReason
from anoncodec.replenish import ReplenishConfig, ReplenishEncoder
from anoncodec.serving.sequences import SequenceLimits, SequenceStore
from tests.unit.test_replenish import C, H, W, latents, tables


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def camera(seed: int = 0, n: int = 4):
    enc = ReplenishEncoder(tables(), ReplenishConfig(keyframe_interval=100, threshold=0.3))
    return enc, [enc.encode(y, 80, 112) for y in latents(n, seed)]


def test_states_are_bounded_in_number_least_recently_used_first():
    store = SequenceStore(tables(), SequenceLimits(max_cameras=2))
    packets = {cid: camera(cid)[1] for cid in (1, 2, 3)}
    for cid in (1, 2):
        store.decode(cid, packets[cid][0], start=True)
    store.decode(1, packets[1][1])  # camera 1 used last: camera 2 is the oldest
    store.decode(3, packets[3][0], start=True)
    assert len(store) == 2 and 2 not in store and {1, 3} <= {c for c in (1, 2, 3) if c in store}
    assert store.state_bytes == 2 * C * H * W * 4 <= store.limits.max_total_bytes
    with pytest.raises(PacketError) as caught:  # camera 2's state is gone: its delta is refused
        store.decode(2, packets[2][1])
    assert caught.value.reason == PacketReason.REFERENCE


def test_idle_states_expire_and_end_frees_the_state():
    clock = Clock()
    store = SequenceStore(tables(), SequenceLimits(idle_s=5), clock=clock)
    _, packets = camera()
    store.decode(9, packets[0], start=True)
    clock.now = 3
    store.decode(9, packets[1])
    clock.now = 9  # 6 s idle
    with pytest.raises(PacketError, match="no keyframe"):
        store.decode(9, packets[2])
    store.decode(9, packets[0], start=True)
    store.decode(9, packets[1], end=True)
    assert 9 not in store and store.state_bytes == 0


def test_start_resets_a_state_and_a_refused_delta_keeps_it():
    store = SequenceStore(tables())
    _, packets = camera()
    store.decode(5, packets[0], start=True)
    with pytest.raises(PacketError):
        store.decode(5, packets[2])  # packets[1] was lost
    assert 5 in store  # the state is kept: the late packet still applies
    assert np.array_equal(store.decode(5, packets[1]), _replay(packets[:2]))
    assert np.array_equal(store.decode(5, packets[2]), _replay(packets[:3]))
    # a START with a delta: the old state is gone, so the delta cannot apply
    with pytest.raises(PacketError) as caught:
        store.decode(5, packets[3], start=True)
    assert caught.value.reason == PacketReason.REFERENCE and 5 not in store


def _replay(packets):
    from anoncodec.replenish import ReplenishDecoder

    dec = ReplenishDecoder(tables())
    for p in packets:
        y = dec.decode(p)
    return y


def test_a_frame_too_large_for_the_state_limit_is_refused():
    store = SequenceStore(tables(), SequenceLimits(max_state_bytes=1024))
    enc = ReplenishEncoder(tables())
    big = enc.encode(np.zeros((C, 20, 20), np.float32), 320, 320)  # 6*20*20 int32 symbols: 9600 bytes
    with pytest.raises(InvalidRequestError, match="sequence state") as caught:
        store.decode(1, big, start=True)
    assert caught.value.reason == PacketReason.FRAME_SIZE and len(store) == 0


def test_limits_validation():
    for bad in ({"max_cameras": 0}, {"idle_s": 0}, {"max_state_bytes": 10}):
        with pytest.raises(ConfigError):
            SequenceLimits(**bad)
