"""Camera (ONNX Runtime, no torch) and server (PyTorch) must agree bit-exactly on latents."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from anoncodec.codec.images import frame_to_tensor
from anoncodec.codec.onnx_export import export_codec
from anoncodec.edge import EdgeEncoder
from anoncodec.errors import ExportError
from anoncodec.packet import pack, unpack
from tests.conftest import tiny_codec


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_codec("factorized", extra_blocks=1)
    out = export_codec(model, tmp_path_factory.mktemp("export"))
    return model, out


def frames():
    rng = np.random.default_rng(0)
    yield rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    yield rng.integers(0, 256, size=(45, 77, 3), dtype=np.uint8)  # needs padding


def test_export_matches_pytorch(exported):
    _, out = exported
    assert out.encoder_max_abs_err < 1e-4 and out.decoder_max_abs_err < 1e-4
    assert out.encoder.is_file() and out.decoder.is_file() and out.tables.is_file()


@pytest.mark.parametrize("frame", list(frames()), ids=["64x96", "45x77"])
def test_onnx_packet_decodes_bit_exactly_in_torch_and_back(exported, frame):
    model, out = exported
    edge = EdgeEncoder(out.encoder, out.tables)
    onnx_packet = unpack(edge.encode_bytes(frame))
    # PyTorch decodes the camera's latent exactly as the camera quantized it
    _, y_hat_edge = edge.tables.encode(edge.analyze(frame))
    y_hat_torch = model.entropy_tables().decode(onnx_packet.streams[0].data, onnx_packet.streams[0].shape)
    assert np.array_equal(y_hat_torch, y_hat_edge)
    assert model.decompress(onnx_packet).shape == (1, 3, *frame.shape[:2])
    # and vice versa: a PyTorch packet decodes identically with the numpy-only tables
    torch_packet = unpack(pack(model.compress(frame_to_tensor(frame))))
    with torch.no_grad():
        y = model.g_a(model.pad(frame_to_tensor(frame)))[0].numpy()
    assert np.array_equal(edge.tables.decode(torch_packet.streams[0].data, torch_packet.streams[0].shape),
                          edge.tables.encode(y)[1])


def test_mismatched_tables_are_refused(exported, tmp_path):
    _, out = exported
    other = export_codec(tiny_codec("factorized", seed=3, extra_blocks=1), tmp_path)
    with pytest.raises(ExportError, match="different exports"):
        EdgeEncoder(out.encoder, other.tables)


def test_hyperprior_export_refused(tmp_path):
    with pytest.raises(ExportError):
        export_codec(tiny_codec("hyperprior"), tmp_path)


def test_edge_does_not_import_torch():
    code = ("import sys, anoncodec.edge, anoncodec.packet, anoncodec.entropy_coder, anoncodec.detectors;"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
