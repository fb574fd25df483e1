"""Guaranteed mode: head regions found on the camera are erased from the latent itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from anoncodec.edge.guard import FaceGuard, GuardConfig, latent_mask, suppress_latent
from anoncodec.errors import ConfigError
from tests.conftest import SAMPLES


def test_latent_mask_covers_the_cells_a_box_touches():
    # factor 16, latent 4x5: box x 20..40, y 0..15 touches rows 0, columns 1..2
    mask = latent_mask(np.array([[20, 0, 40, 15]], np.float32), (4, 5), 16, margin=0)
    assert np.argwhere(mask).tolist() == [[0, 1], [0, 2]]
    grown = latent_mask(np.array([[20, 0, 40, 15]], np.float32), (4, 5), 16, margin=1)
    assert grown.sum() == 2 * 4 and grown[:2, 0:4].all()  # clipped at the top
    # a box ending exactly on a cell border does not take the next cell
    assert latent_mask(np.array([[0, 0, 16, 16]]), (4, 5), 16, 0).sum() == 1
    assert not latent_mask(np.zeros((0, 4)), (4, 5), 16).any()
    assert not latent_mask(np.array([[5, 5, 5, 9]]), (4, 5), 16).any()  # empty box


def test_suppress_latent_writes_the_medians_only_into_the_mask():
    y = np.random.default_rng(0).normal(size=(3, 2, 2)).astype(np.float32)
    mask = np.array([[True, False], [False, False]])
    out = suppress_latent(y, mask, np.array([0.5, -1.0, 2.0], np.float32))
    assert out[:, 0, 0].tolist() == [0.5, -1.0, 2.0]
    np.testing.assert_array_equal(out[:, 1:, :], y[:, 1:, :])
    assert y[0, 0, 0] != 0.5  # the input is left alone
    with pytest.raises(ValueError, match="does not match"):
        suppress_latent(y, np.zeros((3, 3), bool), np.zeros(3))


def test_config_is_checked():
    for bad in ({"threshold": 0.0}, {"margin": -1}, {"upscale": 0.5}, {"pose_size": 100}, {"pose_conf": 0.0}):
        with pytest.raises(ConfigError):
            GuardConfig(**bad)


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory):
    from anoncodec.codec import load_codec
    from anoncodec.codec.onnx_export import export_codec
    from anoncodec.weights import resolve_checkpoint

    model = load_codec(resolve_checkpoint(None))
    folder = tmp_path_factory.mktemp("demo_onnx")
    export_codec(model, folder)
    return model, folder


def test_guarded_packet_holds_medians_over_the_face_and_no_face_comes_back(demo_export):
    """messi5: the face CenterFace finds is erased in the bitstream (any decoder sees medians)."""
    from anoncodec.codec.images import tensor_to_frame
    from anoncodec.detectors.face import CenterFaceDetector
    from anoncodec.edge import EdgeEncoder

    model, folder = demo_export
    frame = np.asarray(Image.open(SAMPLES / "messi5.jpg").convert("RGB"))
    guard = FaceGuard(GuardConfig(margin=0))
    heads = guard.head_boxes(frame)
    assert len(heads) == 1
    encoder = EdgeEncoder(folder / "encoder.onnx", folder / "tables.npz", guard=guard)
    packet = encoder.encode(frame)
    assert encoder.last_guarded == 1
    (stream,) = packet.streams
    y_hat = encoder.tables.decode(stream.data, stream.shape)
    mask = latent_mask(heads, stream.shape[1:], encoder.factor, 0)
    assert 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(y_hat[:, mask], np.repeat(encoder.tables.medians[:, None], mask.sum(), 1))
    plain = EdgeEncoder(folder / "encoder.onnx", folder / "tables.npz").encode(frame)
    y_plain = encoder.tables.decode(plain.streams[0].data, stream.shape)
    np.testing.assert_array_equal(y_hat[:, ~mask], y_plain[:, ~mask])  # the rest is untouched
    assert len(packet.streams[0].data) < len(plain.streams[0].data)  # medians are cheap
    decoded = tensor_to_frame(model.decompress(packet))
    assert len(CenterFaceDetector().detect(decoded, 0.3)) == 0


def test_encode_cli_guard_gives_the_same_packet_in_pytorch_and_onnx(demo_export, tmp_path, capsys):
    from anoncodec.cli.main import main

    _, folder = demo_export
    image = SAMPLES / "messi5.jpg"
    assert main(["encode", str(image), "-o", str(tmp_path / "a.pkt"), "--guard"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["encode", str(image), "-o", str(tmp_path / "b.pkt"), "--guard", "--onnx-dir", str(folder)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["guarded_heads"] == second["guarded_heads"] == 1
    assert (tmp_path / "a.pkt").read_bytes() == (tmp_path / "b.pkt").read_bytes()
    assert main(["encode", str(image), "-o", str(tmp_path / "c.pkt"), "--no-guard"]) == 0
    assert "guarded_heads" not in json.loads(capsys.readouterr().out)
    assert (tmp_path / "c.pkt").read_bytes() != (tmp_path / "a.pkt").read_bytes()
    assert main(["encode", str(image), "-o", str(tmp_path / "d.pkt")]) == 0  # the guard is the default
    assert json.loads(capsys.readouterr().out)["guarded_heads"] == 1
    assert (tmp_path / "d.pkt").read_bytes() == (tmp_path / "a.pkt").read_bytes()


def test_camera_client_guard_erases_heads_and_counts_them(demo_export):
    """``anoncodec camera --mode packets --guard``: packets leave the camera already guarded."""
    pytest.importorskip("prometheus_client")
    from anoncodec.edge.client import CameraClient
    from anoncodec.edge.client_config import ClientConfig
    from anoncodec.edge.sources import Frame
    from anoncodec.edge.transport import InferenceResult
    from anoncodec.packet import unpack

    model, folder = demo_export
    frame = np.asarray(Image.open(SAMPLES / "messi5.jpg").convert("RGB"))
    with pytest.raises(ConfigError, match="packets"):
        ClientConfig(mode="frames", guard=True)
    received = []

    async def infer(packet):
        received.append(unpack(packet))
        return InferenceResult(np.zeros_like(frame), np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    with CameraClient(ClientConfig(mode="packets", export_dir=str(folder), guard=True), infer=infer) as client:
        summary = client.run([Frame(0, 0.0, frame), Frame(1, 0.1, frame)])
        assert summary.frames_ok == 2
        assert client.metrics.heads_erased._value.get() == 2
    guarded = FaceGuard().head_boxes(frame)
    mask = latent_mask(guarded, received[0].streams[0].shape[1:], model.downsampling, 1)
    y_hat = client.encoder.tables.decode(received[0].streams[0].data, received[0].streams[0].shape)
    assert (y_hat[:, mask] == client.encoder.tables.medians[:, None]).all()


def test_erase_leaves_a_latent_without_faces_untouched():
    y = np.random.default_rng(1).normal(size=(4, 3, 5)).astype(np.float32)
    blank = np.full((96, 160, 3), 128, np.uint8)
    out, heads = FaceGuard().erase(blank, y, 32, np.zeros(4, np.float32))
    assert heads == 0 and out is y


@pytest.mark.parametrize("argv,expected", [
    ([], True), (["--mode", "packets"], True), (["--mode", "packets", "--no-guard"], False),
    (["--mode", "frames"], False), (["--mode", "packets", "--guard"], True),
])
def test_camera_guards_packets_by_default(argv, expected):
    import argparse

    from anoncodec.cli.camera import add_arguments, guard_setting

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert guard_setting(parser.parse_args(["--source", "x.mp4", *argv])) is expected


def test_latent_filter_is_the_erasure_for_that_codec(demo_export):
    """The filter a codec's ``compress`` takes: the same latent as ``erase`` with its medians."""
    model, _ = demo_export
    frame = np.asarray(Image.open(SAMPLES / "messi5.jpg").convert("RGB"))
    guard = FaceGuard()
    y = np.random.default_rng(0).normal(size=(model.config.M, 11, 18)).astype(np.float32)
    expected, heads = guard.erase(frame, y, model.downsampling, model.entropy_tables().medians)
    assert heads == 1
    np.testing.assert_array_equal(guard.latent_filter(frame, model)(y), expected)


def test_pose_guard_erases_heads_whose_faces_cannot_be_seen():
    """With ``pose``, a person whose face CenterFace cannot find (hidden here, turned away in
    real footage) still has its head erased: YOLO11n-pose finds the person, and its head
    box comes from the keypoints or the top of its box."""
    pytest.importorskip("onnxruntime")
    frame = np.asarray(Image.open(SAMPLES / "basketball1.png").convert("RGB")).copy()
    h, w = frame.shape[:2]
    plain = FaceGuard(GuardConfig())
    hidden = frame.copy()
    for x1, y1, x2, y2 in plain.head_boxes(frame).round().astype(int):
        hidden[max(y1, 0):y2, max(x1, 0):x2] = 128  # no face left for CenterFace
    assert len(plain.head_boxes(hidden)) == 0
    posed = FaceGuard(GuardConfig(pose=True, pose_size=320))
    heads = posed.head_boxes(hidden)
    persons, _ = posed.pose_detector.detect_pose(hidden, conf=posed.config.pose_conf)
    assert len(persons) >= 1 and len(heads) == len(persons)
    # every head sits in the top part of its person, inside the frame
    for (hx1, hy1, hx2, hy2), (px1, py1, px2, py2, _) in zip(heads, persons):
        assert 0 <= hx1 < hx2 <= w and 0 <= hy1 < hy2 <= h
        assert px1 - 1 <= (hx1 + hx2) / 2 <= px2 + 1 and (hy1 + hy2) / 2 <= py1 + 0.4 * (py2 - py1)
    mask, count = posed.mask(hidden, (h // 16, w // 16), 16)
    assert count == len(heads) and mask.any()
    assert not plain.mask(hidden, (h // 16, w // 16), 16)[0].any()
