"""int8 static quantization of the served detector: what stays float, and that the real
detector stays within MIN_AGREEMENT of fp32 (and export refuses one that does not)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from anoncodec.errors import ExportError
from anoncodec.serving.quantize import MIN_AGREEMENT, DetectorAgreement, calibration_frames, decode_tail
from tests.conftest import SAMPLES

CLIP = SAMPLES / "vtest_excerpt.avi"


def _conv(name: str, x: str, y: str, cin: int, cout: int) -> tuple:
    weight = numpy_helper.from_array(np.zeros((cout, cin, 1, 1), np.float32), f"{name}_w")
    return helper.make_node("Conv", [x, weight.name], [y], name=name), weight


def test_the_decode_tail_is_what_feeds_no_heavy_convolution():
    """backbone conv (heavy) -> act -> head conv (heavy) -> box/score convs (light) -> concat."""
    nodes, weights = [], []
    for name, x, y, cin, cout in (("stem", "image", "a", 3, 32), ("head", "b", "c", 32, 32),
                                  ("boxes", "c", "d", 32, 4), ("scores", "c", "e", 32, 2)):
        node, weight = _conv(name, x, y, cin, cout)
        nodes.append(node)
        weights.append(weight)
    nodes.insert(1, helper.make_node("Relu", ["a"], ["b"], name="act"))
    nodes += [helper.make_node("Sigmoid", ["e"], ["f"], name="sigmoid"),
              helper.make_node("Concat", ["d", "f"], ["out"], axis=1, name="concat")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 6, 8, 8])], weights)
    assert decode_tail(helper.make_model(graph)) == ["boxes", "scores", "sigmoid", "concat"]


def test_a_model_without_heavy_convolutions_is_refused():
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    graph = helper.make_graph([node], "flat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(ExportError, match="nothing worth quantizing"):
        decode_tail(helper.make_model(graph))


def test_calibration_and_check_frames_are_disjoint_halves_of_the_clip():
    first, second = calibration_frames(CLIP, 4, skip=0), calibration_frames(CLIP, 4, skip=1)
    assert len(first) == len(second) == 4 and first[0].dtype == np.uint8 and first[0].ndim == 3
    assert not any(np.array_equal(a, b) for a in first for b in second)


def test_agreement_recall():
    assert DetectorAgreement(16, 94, 89, 88).recall == pytest.approx(88 / 94)
    assert DetectorAgreement(3, 0, 2, 0).recall == 1.0
    assert DetectorAgreement(16, 94, 89, 88).to_dict()["recall"] == 0.9362


@pytest.mark.slow
def test_export_serves_an_int8_detector_that_agrees_with_fp32(tmp_path, capsys, monkeypatch):
    """The real fall-detection YOLOv8s, calibrated and checked on the bundled clip."""
    from anoncodec.cli.main import main
    from anoncodec.codec import save_checkpoint
    from tests.conftest import tiny_codec

    save_checkpoint(tmp_path / "tiny.pt", tiny_codec("factorized"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert main(["export", "--checkpoint", str(tmp_path / "tiny.pt"), "--repository", str(tmp_path / "repo"),
                 "--detector", "fall-yolov8s", "--int8"]) == 0
    assert list((tmp_path / "cwd").iterdir()) == []  # ONNX Runtime's scratch files stay out of the cwd
    report = json.loads(capsys.readouterr().out)["detector_int8"]
    assert report["frames"] == 16 and report["reference"] > 50
    assert report["recall"] >= MIN_AGREEMENT
    assert report["detections"] <= 1.1 * report["reference"]  # and few new ones
    model = onnx.load(str(tmp_path / "repo" / "detector" / "1" / "model.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer]
    assert any(w.dtype == np.int8 and w.size > 10_000 for w in weights)  # the convolutions' weights
    assert model.graph.input[0].name == "detector_images"


@pytest.mark.slow
def test_export_refuses_an_int8_detector_that_loses_persons(tmp_path):
    """Calibrated on flat gray frames (the even ones of the folder), checked on street frames
    (the odd ones): every activation range is too narrow and persons are lost."""
    import cv2

    from anoncodec.frames import read_frames
    from anoncodec.serving.export import export_repository
    from tests.conftest import tiny_codec

    folder = tmp_path / "frames"
    folder.mkdir()
    street = read_frames(CLIP, max_frames=32, stride=4)[:8]
    for i, frame in enumerate(street):
        cv2.imwrite(str(folder / f"{2 * i:02d}.png"), np.full_like(frame, 100 + i))
        cv2.imwrite(str(folder / f"{2 * i + 1:02d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    with pytest.raises(ExportError, match="persons the fp32 one finds"):
        export_repository(model=tiny_codec("factorized"), repository=tmp_path / "repo", int8=True,
                          calibration=folder, detector="fall-yolov8s")
    assert not (tmp_path / "repo" / "detector" / "1" / "model.int8.onnx").exists()


def test_int8_refuses_the_ssd_detector(tmp_path):
    from anoncodec.serving.export import export_repository
    from tests.conftest import tiny_codec

    with pytest.raises(ExportError, match="OpenCV DNN"):
        export_repository(model=tiny_codec("factorized"), repository=tmp_path / "repo", int8=True,
                          detector="ssd-mobilenetv2")
