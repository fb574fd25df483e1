"""Stage objects built from an exported repository, and the TritonPythonModel adapter (fake pb_utils)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from anoncodec.serving.repository import RepositoryOptions, stage_tensors, tensor_name
from anoncodec.serving.runtime import load_stage
from tests.conftest import tiny_codec

# the ONNX (YOLO) detector: these tests batch and check an ONNX Runtime detector stage
OPTIONS = RepositoryOptions(max_height=128, max_width=128, detector_kind="yolo", detector_height=640,
                            detector_width=640, person_classes=(0, 1))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from anoncodec.serving.export import export_repository

    path = tmp_path_factory.mktemp("repo")
    report = export_repository(repository=path, model=tiny_codec("factorized"), options=OPTIONS,
                               detector="fall-yolov8s")
    assert report.encoder_max_abs_err < 1e-3 and report.detector_input == (640, 640)
    return path


def _stage(repo, name):
    return load_stage(name, repo / name / "1", OPTIONS.parameters(name))


def test_stages_chain_into_both_pipelines(repo):
    from anoncodec.edge import EdgeEncoder
    from anoncodec.packet import pack

    frame = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    s = {name: _stage(repo, name) for name in ("frame_preprocess", "encoder", "quantize", "entropy_decode",
                                               "decoder", "decoder_postprocess", "detector", "detector_postprocess")}
    pre = s["frame_preprocess"]({"frame_preprocess_frame": frame})
    y = s["encoder"]({"encoder_x": pre["frame_preprocess_x"]})["encoder_y"]
    q = s["quantize"]({"quantize_y": y})
    edge = EdgeEncoder(repo / "encoder" / "1" / "model.onnx", repo / "quantize" / "1" / "tables.npz")
    packet = edge.encode(frame)
    assert int(q["quantize_bits"][0]) == packet.payload_bits
    dec = s["entropy_decode"]({"entropy_decode_packet": np.array([pack(packet)], dtype=object)})
    np.testing.assert_array_equal(dec["entropy_decode_y_hat"], q["quantize_y_hat"])
    assert dec["entropy_decode_size"].tolist() == [40, 52]
    x_hat = s["decoder"]({"decoder_y_hat": q["quantize_y_hat"]})["decoder_x_hat"]
    post = s["decoder_postprocess"]({"decoder_postprocess_x_hat": x_hat,
                                     "decoder_postprocess_size": pre["frame_preprocess_size"]})
    assert post["decoder_postprocess_frame"].shape == (40, 52, 3)
    out = s["detector"]({"detector_images": post["decoder_postprocess_images"]})["detector_output"]
    found = s["detector_postprocess"]({"detector_postprocess_output": out,
                                       "detector_postprocess_letterbox": post["decoder_postprocess_letterbox"]})
    assert found["detector_postprocess_boxes"].shape[1] == 4


def test_onnx_stage_rejects_wrong_inputs(repo):
    from anoncodec.serving.stages import InvalidRequestError

    encoder = _stage(repo, "encoder")
    with pytest.raises(InvalidRequestError, match="float32"):
        encoder({"encoder_x": np.zeros((1, 3, 32, 32), np.float64)})
    with pytest.raises(InvalidRequestError, match="ONNX Runtime rejected"):
        encoder({"encoder_x": np.zeros((1, 4, 32, 32), np.float32)})


class _FakePb(types.ModuleType):
    """The parts of triton_python_backend_utils the adapter uses."""

    class TritonError:
        INVALID_ARG, INTERNAL = "INVALID_ARG", "INTERNAL"

        def __init__(self, message, code):
            self.message, self.code = message, code

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, array

        def as_numpy(self):
            return self.array

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None):
            self.outputs, self.error = {t.name: t.array for t in output_tensors}, error

    class Logger:
        messages: list = []

        @classmethod
        def log_info(cls, msg):
            cls.messages.append(("info", msg))

        log_warn = log_verbose = log_info

        @classmethod
        def log_error(cls, msg):
            cls.messages.append(("error", msg))

    class MetricFamily:
        COUNTER = "counter"

        def __init__(self, name, description, kind):
            pass

        def Metric(self, labels):  # noqa: N802 - Triton's name
            return types.SimpleNamespace(increment=lambda value: None)

    @staticmethod
    def get_input_tensor_by_name(request, name):
        return request.get(name)

    @staticmethod
    def triton_string_to_numpy(name):
        return {"TYPE_FP32": np.float32, "TYPE_INT64": np.int64, "TYPE_UINT8": np.uint8,
                "TYPE_FP64": np.float64}[name]


@pytest.fixture
def pb(monkeypatch):
    fake = _FakePb("triton_python_backend_utils")
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    return fake


def _model(repo, stage):
    """Initialize the adapter with the config Triton would pass (as JSON)."""
    from anoncodec.serving.python_model import stage_model

    inputs, outputs = stage_tensors(stage)
    model_config = {
        "input": [{"name": tensor_name(stage, t[0])} for t in inputs],
        "output": [{"name": tensor_name(stage, t[0]), "data_type": f"TYPE_{t[1]}"} for t in outputs],
        "parameters": {k: {"string_value": v} for k, v in OPTIONS.parameters(stage).items()},
    }
    model = stage_model(stage)()
    model.initialize({"model_config": json.dumps(model_config), "model_name": stage,
                      "model_repository": str(repo / stage), "model_version": "1"})
    return model


def test_adapter_answers_each_request_once(repo, pb):
    model = _model(repo, "frame_preprocess")
    ok = {"frame_preprocess_frame": pb.Tensor("frame_preprocess_frame", np.zeros((20, 30, 3), np.uint8))}
    too_big = {"frame_preprocess_frame": pb.Tensor("frame_preprocess_frame", np.zeros((200, 30, 3), np.uint8))}
    responses = model.execute([ok, too_big, {}, ok])
    assert len(responses) == 4
    assert responses[0].error is None and responses[0].outputs["frame_preprocess_size"].dtype == np.int64
    assert responses[0].outputs["frame_preprocess_x"].shape == (1, 3, 32, 32)
    assert responses[1].error.code == "INVALID_ARG" and "200x30" in responses[1].error.message
    assert responses[2].error.code == "INVALID_ARG" and "no input tensor" in responses[2].error.message
    assert responses[3].error is None
    model.finalize()


def test_adapter_tags_a_rejection_with_its_reason_code(repo, pb):
    from anoncodec.errors import parse_tag

    model = _model(repo, "entropy_decode")
    name = "entropy_decode_packet"
    packet = {name: pb.Tensor(name, np.array([b"ANCP\x01 too short"], dtype=object))}
    text = {name: pb.Tensor(name, np.array(["text"], dtype=object))}
    short, untagged = model.execute([packet, text])
    assert short.error.code == "INVALID_ARG"
    assert short.error.message.startswith("entropy_decode: [packet:truncated] packet truncated")
    assert parse_tag(short.error.message) == ("packet", "truncated")
    # a request error without a reason code keeps its plain message
    assert untagged.error.code == "INVALID_ARG" and parse_tag(untagged.error.message) is None
    frame = np.zeros((200, 30, 3), np.uint8)
    (too_big,) = _model(repo, "frame_preprocess").execute(
        [{"frame_preprocess_frame": pb.Tensor("frame_preprocess_frame", frame)}])
    assert parse_tag(too_big.error.message) == ("request", "frame-size")
    model.finalize()


def test_adapter_reports_bugs_as_internal(repo, pb, monkeypatch):
    model = _model(repo, "frame_preprocess")
    monkeypatch.setattr(model.stage, "run", lambda inputs: 1 / 0)
    frame = {"frame_preprocess_frame": pb.Tensor("frame_preprocess_frame", np.zeros((20, 30, 3), np.uint8))}
    (response,) = model.execute([frame])
    assert response.error.code == "INTERNAL" and "ZeroDivisionError" in response.error.message
    assert any(level == "error" and "Traceback" in msg for level, msg in pb.Logger.messages)


def test_onnx_stage_runs_equal_shapes_as_one_batch(repo, monkeypatch):
    from anoncodec.serving.stages import InvalidRequestError

    encoder = _stage(repo, "encoder")
    assert encoder.fixed_batch is None  # the export leaves a dynamic batch dimension
    calls = []
    infer = encoder._infer
    monkeypatch.setattr(encoder, "_infer", lambda x: calls.append(x.shape) or infer(x))
    rng = np.random.default_rng(1)
    small = [rng.random((1, 3, 32, 32), dtype=np.float32) for _ in range(3)]
    large = rng.random((1, 3, 64, 32), dtype=np.float32)
    requests = [{"x": small[0]}, {"x": large}, {"x": small[1]}, {"x": small[2].astype(np.float64)},
                {"x": small[2]}]
    outcomes = encoder.run_many(requests)
    assert sorted(calls) == [(1, 3, 64, 32), (3, 3, 32, 32)]  # one call per shape
    assert isinstance(outcomes[3], InvalidRequestError)
    for i in (0, 1, 2, 4):
        alone = infer(requests[i]["x"])
        np.testing.assert_allclose(outcomes[i]["y"], alone, rtol=1e-5, atol=1e-5)
        assert outcomes[i]["y"].shape[0] == 1


def test_a_failing_batch_is_rerun_one_by_one(repo, monkeypatch):
    encoder = _stage(repo, "encoder")
    infer = encoder._infer

    def fail_on_batches(x):
        if len(x) > 1:
            raise RuntimeError("out of memory")
        return infer(x)

    monkeypatch.setattr(encoder, "_infer", fail_on_batches)
    x = np.zeros((1, 3, 32, 32), np.float32)
    outcomes = encoder.run_many([{"x": x}, {"x": x}])
    assert all(isinstance(o, dict) and o["y"].shape[0] == 1 for o in outcomes)


def test_adapter_batches_the_detector(repo, pb):
    model = _model(repo, "detector")
    rng = np.random.default_rng(2)
    images = [rng.random((1, 3, 640, 640), dtype=np.float32) for _ in range(2)]
    requests = [{"detector_images": pb.Tensor("detector_images", im)} for im in images] + [{}]
    responses = model.execute(requests)
    assert len(responses) == 3
    for image, response in zip(images, responses):
        assert response.error is None
        alone = model.stage({"detector_images": image})["detector_output"]
        np.testing.assert_allclose(response.outputs["detector_output"], alone, rtol=1e-3, atol=1e-3)
    assert responses[2].error.code == "INVALID_ARG"
    model.finalize()
