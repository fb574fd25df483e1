"""The serving stage functions on hand-made numpy arrays (no server, no torch)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from anoncodec.entropy_coder import CategoricalCoder, FactorizedTables
from anoncodec.errors import ModelMismatchError, PacketError, PacketReason
from anoncodec.packet import Packet, Stream, pack
from anoncodec.serving.stages import (
    CodecInfo,
    FrameLimits,
    InvalidRequestError,
    crop_frame,
    decode_packet,
    detections,
    letterbox_from_array,
    letterbox_to_array,
    preprocess_frame,
    quantize_latent,
    reconstruct,
    ssd_detections,
)

C, FACTOR = 3, 16
MODEL_ID = bytes(range(16))


@pytest.fixture(scope="module")
def tables() -> FactorizedTables:
    pmfs = [np.array([1, 2, 8, 30, 8, 2, 1, 1]) for _ in range(C)]  # last entry: escape
    return FactorizedTables(medians=np.array([0.0, 0.25, -0.5], np.float32),
                            coder=CategoricalCoder(pmfs=pmfs, offsets=np.full(C, -3)), model_id=MODEL_ID)


@pytest.fixture(scope="module")
def codec() -> CodecInfo:
    return CodecInfo(MODEL_ID, FACTOR, C)


def _packet(tables, h=40, w=52, model_id=MODEL_ID, shape=None) -> bytes:
    shape = shape or (C, -(-h // FACTOR), -(-w // FACTOR))
    y = np.random.default_rng(1).normal(0, 2, shape).astype(np.float32)
    payload, _ = tables.encode(y)
    return pack(Packet(model_id, "factorized", h, w, (Stream(shape, payload),)))


def test_importing_serving_does_not_load_torch():
    code = ("import sys\nimport anoncodec.serving, anoncodec.serving.runtime, anoncodec.serving.launcher\n"
            "import anoncodec.serving.python_model, anoncodec.serving.export\n"
            "assert 'torch' not in sys.modules, 'serving imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_preprocess_pads_and_reports_size():
    frame = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    x, size = preprocess_frame(frame, FACTOR)
    assert x.shape == (1, 3, 48, 64) and x.dtype == np.float32
    assert size.dtype == np.int64 and size.tolist() == [40, 52]
    np.testing.assert_allclose(x[0, :, :40, :52], frame.transpose(2, 0, 1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(x[0, :, 40:, :52], np.repeat(x[0, :, 39:40, :52], 8, axis=1))  # edge pad


@pytest.mark.parametrize("frame, match", [
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8), np.uint8), "3-D"),
    (np.zeros((8, 8, 4), np.uint8), r"\[H, W, 3\]"),
    (np.zeros((0, 8, 3), np.uint8), "0x8"),
    (np.zeros((33, 8, 3), np.uint8), "33x8.*32x64"),
    (np.zeros((8, 65, 3), np.uint8), "8x65"),
])
def test_preprocess_rejects_bad_frames(frame, match):
    with pytest.raises(InvalidRequestError, match=match):
        preprocess_frame(frame, FACTOR, FrameLimits(max_height=32, max_width=64))


def test_frame_limits_validate_themselves():
    with pytest.raises(InvalidRequestError):
        FrameLimits(max_height=0)
    with pytest.raises(InvalidRequestError):
        FrameLimits(max_width=20000)


def test_quantize_matches_the_entropy_coder(tables):
    y = np.random.default_rng(2).normal(0, 3, (1, C, 3, 4)).astype(np.float32)
    y_hat, bits = quantize_latent(y, tables)
    payload, expected = tables.encode(y[0])
    assert bits.dtype == np.int64 and bits.tolist() == [8 * len(payload)]
    np.testing.assert_array_equal(y_hat[0], expected)
    assert y_hat.shape == y.shape and y_hat.dtype == np.float32
    with pytest.raises(InvalidRequestError, match="channels"):
        quantize_latent(np.zeros((1, C + 1, 2, 2), np.float32), tables)
    with pytest.raises(InvalidRequestError, match="float32"):
        quantize_latent(np.zeros((1, C, 2, 2), np.float64), tables)


@pytest.mark.parametrize("wrap", [bytes, lambda b: np.array([b], dtype=object)])
def test_decode_packet_round_trip(tables, codec, wrap):
    data = _packet(tables)
    y_hat, size = decode_packet(wrap(data), tables, codec)
    assert y_hat.shape == (1, C, 3, 4) and y_hat.dtype == np.float32
    assert size.tolist() == [40, 52] and size.dtype == np.int64
    y = np.random.default_rng(1).normal(0, 2, (C, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(y_hat[0], tables.encode(y)[1])


def test_decode_packet_rejects_bad_packets(tables, codec):
    data = _packet(tables)
    corrupted = bytearray(data)
    corrupted[len(data) // 2] ^= 0x40
    cases = [
        (bytes(corrupted), PacketError, "CRC"),
        (np.random.default_rng(3).bytes(200), PacketError, "magic"),
        (b"", PacketError, "truncated"),
        (data[:-7], PacketError, None),
        (_packet(tables, model_id=bytes(16)), ModelMismatchError, "encoded by model"),
        (_packet(tables, shape=(C, 2, 4)), PacketError, "does not match"),
        (_packet(tables, h=100, w=52), InvalidRequestError, "100x52"),
        (np.array(["text"], dtype=object), InvalidRequestError, "raw bytes"),
        (np.array([data, data], dtype=object), InvalidRequestError, "exactly one"),
    ]
    for packet, error, match in cases:
        with pytest.raises(error, match=match):
            decode_packet(packet, tables, codec, FrameLimits(max_height=64, max_width=64))


def test_decode_packet_rejections_carry_their_reason_code(tables, codec):
    hyperprior = pack(Packet(MODEL_ID, "hyperprior", 40, 52, (Stream((C, 3, 4), b""), Stream((2, 1, 1), b""))))
    two_streams = pack(Packet(MODEL_ID, "factorized", 40, 52, (Stream((C, 3, 4), b""),) * 2))
    cases = [
        (_packet(tables, model_id=bytes(16)), PacketReason.MODEL_ID),
        (hyperprior, PacketReason.ARCHITECTURE),
        (two_streams, PacketReason.STREAMS),
        (_packet(tables, shape=(C, 2, 4)), PacketReason.LATENT_SHAPE),
        (_packet(tables, h=100, w=52), PacketReason.FRAME_SIZE),
        (_packet(tables)[:-7], PacketReason.CRC),
    ]
    for packet, reason in cases:
        with pytest.raises((PacketError, InvalidRequestError)) as caught:
            decode_packet(packet, tables, codec, FrameLimits(max_height=64, max_width=64))
        assert caught.value.reason == reason, str(caught.value)


def test_crop_frame_rounds_and_clips():
    x_hat = np.zeros((1, 3, 32, 32), np.float32)
    x_hat[0, 0, 0, 0], x_hat[0, 1, 0, 0], x_hat[0, 2, 0, 0] = 1.5, -0.2, 0.5
    frame = crop_frame(x_hat, np.array([20, 30], np.int64))
    assert frame.shape == (20, 30, 3) and frame.dtype == np.uint8
    assert frame[0, 0].tolist() == [255, 0, 128]  # 127.5 rounds half to even
    with pytest.raises(InvalidRequestError, match="crop"):
        crop_frame(x_hat, np.array([33, 30], np.int64))
    with pytest.raises(InvalidRequestError, match="size"):
        crop_frame(x_hat, np.array([3.0, 4.0]))


def test_reconstruct_letterboxes_for_the_detector():
    x_hat = np.full((1, 3, 32, 64), 1.0, np.float32)
    frame, images, params = reconstruct(x_hat, np.array([30, 60], np.int64), 64)
    assert frame.shape == (30, 60, 3) and images.shape == (1, 3, 64, 64) and params.dtype == np.float64
    p = letterbox_from_array(params)
    assert (p.src_h, p.src_w, p.dst_h, p.dst_w) == (30, 60, 64, 64) and p.pad_y == 16
    assert letterbox_to_array(p).tolist() == params.tolist()
    with pytest.raises(InvalidRequestError):
        letterbox_from_array(np.zeros(7))


def test_detections_map_boxes_back_to_the_frame():
    frame = np.zeros((100, 200, 3), np.uint8)
    _, _, params = reconstruct(np.zeros((1, 3, 112, 208), np.float32), np.array([100, 200]), 64)
    # letterbox: scale 0.32, pad_y 16; one confident anchor, one below conf, class 1 (a person)
    out = np.zeros((1, 6, 3), np.float32)
    out[0, :4, 0] = [32, 32, 16, 16]  # cx, cy, w, h in the 64x64 input
    out[0, 5, 0] = 0.9
    out[0, :4, 1] = [10, 10, 4, 4]
    out[0, 4, 1] = 0.1
    boxes, scores = detections(out, params, conf=0.25, person_classes=(0, 1))
    assert boxes.dtype == np.float32 and scores.dtype == np.float32 and frame.shape[0] == 100
    np.testing.assert_allclose(boxes, [[75, 25, 125, 75]], rtol=1e-5)
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    boxes, scores = detections(out, params, person_classes=(0,))  # class 1 is not a person now
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    with pytest.raises(InvalidRequestError, match="4\\+K"):
        detections(np.zeros((6, 3), np.float32), params)


def test_ssd_detections_map_normalized_rows_back_to_the_frame():
    _, _, params = reconstruct(np.zeros((1, 3, 112, 208), np.float32), np.array([100, 200]), 64)
    # letterbox 200x100 -> 64x64: scale 0.32, pad_y 16; rows: image_id, class, score, x1, y1, x2, y2 in [0, 1]
    out = np.array([[[0, 1, 0.9, 0.25, 0.375, 0.75, 0.625],  # a person: 16..48 x 24..40 of the input
                     [0, 3, 0.9, 0.0, 0.25, 1.0, 0.75],  # a car
                     [0, 1, 0.1, 0.0, 0.25, 0.5, 0.5]]], np.float32)  # below conf
    boxes, scores = ssd_detections(out, params, conf=0.25)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    np.testing.assert_allclose(boxes, [[50, 25, 150, 75]], rtol=1e-5)
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    boxes, scores = ssd_detections(out, params, person_classes=(3,))
    np.testing.assert_allclose(boxes, [[0, 0, 200, 100]], rtol=1e-5)
    with pytest.raises(InvalidRequestError, match="\\[1, N, 7\\]"):
        ssd_detections(out[0], params)
    with pytest.raises(InvalidRequestError, match="\\[1, N, 7\\]"):
        ssd_detections(np.zeros((1, 3, 6), np.float32), params)
