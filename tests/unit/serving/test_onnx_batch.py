"""Giving a fixed-batch ONNX model a dynamic batch, and proving the result batches correctly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from anoncodec.detectors.person import default_person_model_path
from anoncodec.errors import ExportError
from anoncodec.serving.onnx_batch import batch_error, has_dynamic_batch, make_batch_dynamic


def _save(tmp_path, name, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def test_offline_yolo_detector_gets_a_batch_and_still_agrees(tmp_path):
    source = default_person_model_path()
    assert not has_dynamic_batch(source)  # it ships with a fixed batch of 1
    dest = tmp_path / "detector.onnx"
    assert make_batch_dynamic(source, dest) == 3  # one target shared by the head's reshapes + two DFL
    assert has_dynamic_batch(dest)
    assert batch_error(dest, source, (3, 640, 640), batch=3) < 1e-4


def test_reshape_targets_follow_the_batch(tmp_path):
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, 2, 3])
    path = _save(tmp_path, "reshape", [helper.make_node("Reshape", ["x", "shape"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3])], [shape])
    dest = tmp_path / "dynamic.onnx"
    assert make_batch_dynamic(path, dest) == 1
    assert batch_error(dest, path, (6,), batch=4) == 0.0


def test_a_graph_that_mixes_the_batch_is_caught(tmp_path):
    # softmax over axis 0 couples the items of a batch: it runs, but gives other numbers
    path = _save(tmp_path, "mixing", [helper.make_node("Softmax", ["x"], ["y"], axis=0)],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    dest = tmp_path / "dynamic.onnx"
    make_batch_dynamic(path, dest)
    assert batch_error(dest, path, (4,)) > 0.1


def test_a_graph_that_cannot_batch_raises(tmp_path):
    # the reshape's leading 1 is not the batch here: batch 2 no longer fits the target
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 4])
    path = _save(tmp_path, "transposed",
                 [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
                  helper.make_node("Reshape", ["t", "shape"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [shape])
    dest = tmp_path / "dynamic.onnx"
    make_batch_dynamic(path, dest)
    with pytest.raises(ExportError, match="batch"):
        batch_error(dest, path, (4,))


def test_a_fixed_batch_other_than_one_is_refused(tmp_path):
    path = _save(tmp_path, "two", [helper.make_node("Identity", ["x"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    with pytest.raises(ExportError, match="fixed at 2"):
        make_batch_dynamic(path, tmp_path / "out.onnx")


def test_export_reports_the_detector_batch_error(tmp_path):
    from anoncodec.serving.export import export_repository
    from anoncodec.serving.repository import RepositoryOptions
    from tests.conftest import tiny_codec

    report = export_repository(repository=tmp_path / "repo", model=tiny_codec("factorized"),
                               options=RepositoryOptions(max_height=64, max_width=64), detector="fall-yolov8s")
    assert report.max_batch == 4 and report.detector_batch_err < 1e-4
    assert has_dynamic_batch(tmp_path / "repo" / "detector" / "1" / "model.onnx")
    assert "max_batch_size: 4" in (tmp_path / "repo" / "detector" / "config.pbtxt").read_text()
    unbatched = export_repository(repository=tmp_path / "flat", model=tiny_codec("factorized"),
                                  options=RepositoryOptions(max_height=64, max_width=64, max_batch=0),
                                  detector="fall-yolov8s")
    assert unbatched.detector_batch_err is None
    assert not has_dynamic_batch(tmp_path / "flat" / "detector" / "1" / "model.onnx")
    np.testing.assert_equal(unbatched.max_batch, 0)
