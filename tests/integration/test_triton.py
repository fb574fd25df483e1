"""The real tritonserver (pip nvidia-pytriton) serving an exported model repository.

Uses the session fixtures of ``tests/integration/conftest.py`` (a tiny untrained codec and
the offline YOLO person detector exported into a temporary repository, one server on free
ports) and calls both ensembles over gRPC: the anoncodec.contract contract, the
same results as the in-process pipeline (EdgeEncoder + ONNX Runtime decoder + the served SSD detector),
and one error response per bad request while the server stays up.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from anoncodec.cli.main import main
from tests.conftest import SAMPLES, tiny_codec
from tests.integration.conftest import REPO_MAX_H

pytestmark = [pytest.mark.slow, pytest.mark.triton]

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")
from tritonclient.utils import InferenceServerException  # noqa: E402

MAX_H, MAX_W = 480, 640  # frames these tests send (the repository accepts larger ones)
# Triton and the reference run the same ONNX Runtime graphs on the same inputs; allow one
# gray level for thread-count-dependent float sums.
PIXEL_TOLERANCE = 1


@pytest.fixture(scope="module")
def client(server):
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        yield c


@pytest.fixture(scope="module")
def reference(exported):
    """The in-process pipeline the ensembles must reproduce."""
    from anoncodec.detectors._onnx import ort_session
    from anoncodec.detectors.ssd import SsdPersonDetector
    from anoncodec.edge import EdgeEncoder

    encoder = EdgeEncoder(exported / "onnx" / "encoder.onnx", exported / "onnx" / "tables.npz")
    decoder = ort_session(exported / "onnx" / "decoder.onnx")
    detector = SsdPersonDetector()  # the served default, at its 300x300

    def decode(packet):
        (stream,) = packet.streams
        y_hat = encoder.tables.decode(stream.data, stream.shape)[None]
        (x_hat,) = decoder.run(None, {"y_hat": y_hat})
        x = np.clip(x_hat[0, :, : packet.height, : packet.width], 0, 1) * 255
        frame = np.rint(x).astype(np.uint8).transpose(1, 2, 0)
        return frame, detector.detect(frame)

    return encoder, decode, detector


def _frame(h=MAX_H, w=MAX_W) -> np.ndarray:
    img = Image.open(SAMPLES / "basketball1.png").convert("RGB").resize((w, h))
    return np.asarray(img)


def _infer(client, model, name, array, dtype):
    tensor = grpcclient.InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor])


def _anonymize(client, frame):
    return _infer(client, "anonymize_frame", "FRAME", frame, "UINT8")


def _analyze(client, packet: bytes):
    return _infer(client, "analyze_bitstream", "PACKET", np.array([packet], dtype=object), "BYTES")


def _check_contract(result, h, w, with_bits):
    outputs = {o.name: o for o in result.get_response().outputs}
    expected = {"ANONYMIZED": "UINT8", "BOXES": "FP32", "SCORES": "FP32"} | ({"BITS": "INT64"} if with_bits else {})
    assert {k: v.datatype for k, v in outputs.items()} == expected
    anonymized, boxes, scores = (result.as_numpy(n) for n in ("ANONYMIZED", "BOXES", "SCORES"))
    assert anonymized.shape == (h, w, 3) and anonymized.dtype == np.uint8
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and boxes.dtype == np.float32
    assert scores.shape == (boxes.shape[0],) and scores.dtype == np.float32
    if with_bits:
        assert result.as_numpy("BITS").shape == (1,) and result.as_numpy("BITS").dtype == np.int64
    return anonymized, boxes, scores


def _same(anonymized, boxes, scores, ref_frame, ref_found):
    assert np.abs(anonymized.astype(int) - ref_frame.astype(int)).max() <= PIXEL_TOLERANCE
    np.testing.assert_allclose(boxes, ref_found[:, :4], atol=0.5)
    np.testing.assert_allclose(scores, ref_found[:, 4], atol=1e-4)


def test_anonymize_frame_matches_the_in_process_pipeline(client, reference):
    encoder, decode, _ = reference
    for h, w in ((MAX_H, MAX_W), (37, 101)):  # padded to the factor 32 and cropped back
        frame = _frame(h, w)
        result = _anonymize(client, frame)
        anonymized, boxes, scores = _check_contract(result, h, w, with_bits=True)
        packet = encoder.encode(frame)
        assert int(result.as_numpy("BITS")[0]) == packet.payload_bits
        _same(anonymized, boxes, scores, *decode(packet))


def test_analyze_bitstream_accepts_camera_packets(client, reference, exported, tmp_path, capsys):
    _, decode, _ = reference
    from anoncodec.packet import unpack

    frame = _frame(120, 200)
    Image.fromarray(frame).save(tmp_path / "f.png")
    assert main(["encode", str(tmp_path / "f.png"), "-o", str(tmp_path / "f.packet"),
                 "--onnx-dir", str(exported / "onnx")]) == 0
    json.loads(capsys.readouterr().out)
    data = (tmp_path / "f.packet").read_bytes()
    anonymized, boxes, scores = _check_contract(_analyze(client, data), 120, 200, with_bits=False)
    _same(anonymized, boxes, scores, *decode(unpack(data)))


def test_detector_stages_find_the_same_persons(client, reference):
    """The decoded frames of an untrained codec hold no persons: check detection on a real photo."""
    from anoncodec.detectors.person import letterbox
    from anoncodec.serving.stages import letterbox_to_array

    _, _, detector = reference
    frame = _frame()
    images, params = letterbox(frame, detector.input_hw)
    output = _infer(client, "detector", "detector_images", images, "FP32").as_numpy("detector_output")
    inputs = []
    for name, array, dtype in (("detector_postprocess_output", output, "FP32"),
                               ("detector_postprocess_letterbox", letterbox_to_array(params), "FP64")):
        inputs.append(grpcclient.InferInput(name, list(array.shape), dtype))
        inputs[-1].set_data_from_numpy(array)
    result = client.infer("detector_postprocess", inputs)
    expected = detector.detect(frame)
    assert len(expected) >= 2, "basketball1.png should show several persons"
    np.testing.assert_allclose(result.as_numpy("detector_postprocess_boxes"), expected[:, :4], atol=0.5)
    np.testing.assert_allclose(result.as_numpy("detector_postprocess_scores"), expected[:, 4], atol=1e-4)


def _bad_requests(exported, reference):
    from anoncodec.packet import pack

    encoder, _, _ = reference
    good = pack(encoder.encode(_frame(64, 64)))
    corrupted = bytearray(good)
    corrupted[40] ^= 0xFF
    from anoncodec.codec.onnx_export import export_codec
    from anoncodec.edge import EdgeEncoder

    other_dir = exported / "other"
    if not (other_dir / "encoder.onnx").exists():
        export_codec(tiny_codec("factorized", seed=7, extra_blocks=1), other_dir)
    foreign = EdgeEncoder(other_dir / "encoder.onnx", other_dir / "tables.npz").encode_bytes(_frame(64, 64))
    return [
        ("wrong dtype", lambda c: _infer(c, "anonymize_frame", "FRAME", _frame(32, 32).astype(np.float32), "FP32"),
         "FP32"),
        ("wrong shape", lambda c: _infer(c, "anonymize_frame", "FRAME", np.zeros((32, 32, 4), np.uint8), "UINT8"),
         "shape"),
        ("2-D frame", lambda c: _infer(c, "anonymize_frame", "FRAME", np.zeros((32, 32), np.uint8), "UINT8"),
         "shape"),
        ("frame over the max size", lambda c: _anonymize(c, np.zeros((REPO_MAX_H + 1, 64, 3), np.uint8)),
         f"{REPO_MAX_H + 1}x64"),
        ("corrupted packet", lambda c: _analyze(c, bytes(corrupted)), "CRC"),
        ("random bytes", lambda c: _analyze(c, np.random.default_rng(0).bytes(300)), "magic"),
        ("empty packet", lambda c: _analyze(c, b""), "truncated"),
        ("packet of other weights", lambda c: _analyze(c, foreign), "encoded by model"),
        ("two packets", lambda c: _infer(c, "analyze_bitstream", "PACKET", np.array([good, good], dtype=object),
                                         "BYTES"), "exactly one|shape"),
    ]


def test_bad_requests_get_an_error_and_the_server_keeps_serving(client, server, exported, reference):
    from anoncodec.packet import pack

    encoder, _, _ = reference
    good_frame = _frame(64, 64)
    good_packet = pack(encoder.encode(good_frame))
    for what, call, match in _bad_requests(exported, reference):
        with pytest.raises(InferenceServerException, match=match) as info:
            call(client)
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT", f"{what}: {info.value}"
        assert "internal error" not in str(info.value), f"{what}: {info.value}"
        assert server.is_ready() and client.is_server_live(), f"server went down after {what}"
        _check_contract(_anonymize(client, good_frame), 64, 64, with_bits=True)
        _check_contract(_analyze(client, good_packet), 64, 64, with_bits=False)


def test_metrics_endpoint_and_latency(client, server):
    import urllib.request

    frame = _frame()
    _anonymize(client, frame)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        _anonymize(client, frame)
        times.append(time.perf_counter() - start)
    print(f"anonymize_frame {MAX_W}x{MAX_H}: median {1000 * sorted(times)[1]:.0f} ms over 3 calls")
    with urllib.request.urlopen(server.metrics_url, timeout=5) as response:
        text = response.read().decode()
    assert 'nv_inference_request_success{model="anonymize_frame"' in text
    assert "anoncodec_stage_requests_total" in text


def _batch_stats(client, model):
    stats = client.get_inference_statistics(model_name=model, as_json=True)["model_stats"][0]
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def test_concurrent_requests_are_batched_and_each_gets_its_own_result(client, server, reference):
    """The dynamic batcher joins requests from both ensembles; results stay per request."""
    import queue

    from anoncodec.packet import pack

    encoder, decode, _ = reference
    frames = [np.ascontiguousarray(np.roll(_frame(), 40 * i, axis=1)) for i in range(4)]
    packets = [encoder.encode(f) for f in frames]
    before = {m: _batch_stats(client, m) for m in ("detector", "decoder")}
    done: queue.Queue = queue.Queue()
    for i, frame in enumerate(frames):
        tensor = grpcclient.InferInput("FRAME", list(frame.shape), "UINT8")
        tensor.set_data_from_numpy(frame)
        client.async_infer("anonymize_frame", [tensor], partial_callback(done, ("frame", i)))
        tensor = grpcclient.InferInput("PACKET", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([pack(packets[i])], dtype=object))
        client.async_infer("analyze_bitstream", [tensor], partial_callback(done, ("packet", i)))
    results = dict(done.get(timeout=300) for _ in range(2 * len(frames)))
    for (kind, i), (result, error) in results.items():
        assert error is None, f"{kind} {i}: {error}"
        anonymized, boxes, scores = _check_contract(result, MAX_H, MAX_W, with_bits=kind == "frame")
        _same(anonymized, boxes, scores, *decode(packets[i]))
    after = {m: _batch_stats(client, m) for m in ("detector", "decoder")}
    inferences, executions = (a - b for a, b in zip(after["detector"], before["detector"]))
    print(f"detector: {inferences} frames in {executions} executions; decoder: "
          f"{after['decoder'][0] - before['decoder'][0]} in {after['decoder'][1] - before['decoder'][1]}")
    assert inferences == 2 * len(frames)
    assert executions < inferences, "8 concurrent frames should have formed at least one batch"


def partial_callback(done, key):
    """An async_infer callback that puts ``(key, (result, error))`` on ``done``."""
    return lambda result, error: done.put((key, (result, error)))
