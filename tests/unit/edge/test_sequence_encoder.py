"""The camera's sequence encoder (anoncodec.edge.sequence): guard cells held across frames,
grown by a cell, at the medians in every decoded frame."""

import numpy as np

from anoncodec.edge.sequence import SequenceEncoder, grow_cells
from anoncodec.replenish import ReplenishConfig, ReplenishDecoder
from tests.unit.test_replenish import C, H, W, latents, tables


def test_grow_cells():
    mask = np.zeros((5, 6), bool)
    mask[2, 3] = True
    grown = grow_cells(mask)
    assert grown.sum() == 9 and grown[1:4, 2:5].all()
    assert grow_cells(mask, 2).sum() == 25 and not grow_cells(np.zeros((3, 3), bool)).any()


class FakeEdgeEncoder:
    """EdgeEncoder's interface: latents from a list, the guard's mask from another."""

    def __init__(self, ys, masks):
        self.tables, self.ys, self.masks, self.i = tables(), ys, masks, 0

    def guarded_latent(self, frame_rgb):
        y, mask = self.ys[self.i].copy(), self.masks[self.i]
        self.i += 1
        y[:, mask] = self.tables.medians[:, None]
        return y, mask


def test_a_head_missed_in_one_frame_stays_erased():
    ys = latents(4)
    head = np.zeros((H, W), bool)
    head[1:3, 2:4] = True
    missed = np.zeros((H, W), bool)
    edge = FakeEdgeEncoder(ys, [head, missed, missed, missed])
    enc = SequenceEncoder(edge, ReplenishConfig(keyframe_interval=100, threshold=0.0), guard_hold=2, hold_grow=1)
    dec = ReplenishDecoder(edge.tables)
    medians = edge.tables.medians[:, None]
    frame = np.zeros((80, 112, 3), np.uint8)
    held = grow_cells(head)
    for i in range(4):
        y_hat = dec.decode(enc.encode(frame))
        if i in (1, 2):  # the detector missed the head: the cells (grown by one) stay at the medians
            assert np.allclose(y_hat[:, held], medians), i
        elif i == 0:
            assert np.allclose(y_hat[:, head], medians)
    # after guard_hold frames without a head, the cells are sent again
    assert not np.allclose(y_hat[:, head], medians)
    assert y_hat.shape == (C, H, W)


def test_without_hold_only_the_current_heads_are_erased():
    ys = latents(2)
    head = np.zeros((H, W), bool)
    head[0, 0] = True
    edge = FakeEdgeEncoder(ys, [head, np.zeros((H, W), bool)])
    enc = SequenceEncoder(edge, ReplenishConfig(keyframe_interval=100, threshold=0.0), guard_hold=0)
    dec = ReplenishDecoder(edge.tables)
    frame = np.zeros((80, 112, 3), np.uint8)
    dec.decode(enc.encode(frame))
    assert not np.allclose(dec.decode(enc.encode(frame))[:, 0, 0], edge.tables.medians)


def test_the_camera_client_refuses_the_stream_mode():
    import pytest

    from anoncodec.edge.client import CameraClient
    from anoncodec.edge.client_config import ClientConfig
    from anoncodec.errors import ConfigError

    with pytest.raises(ConfigError, match="StreamSender"):
        CameraClient(ClientConfig(mode="stream"), encoder=object())
