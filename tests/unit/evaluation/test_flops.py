"""Multiply-accumulates counted from an ONNX graph's shapes, on a graph built by hand."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from anoncodec.evaluation.flops import graph_cost  # noqa: E402


def _model(tmp_path):
    w1 = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w1")
    w2 = numpy_helper.from_array(np.zeros((8, 4, 2, 2), np.float32), "w2")  # ConvTranspose: [Cin, Cout, k, k]
    w3 = numpy_helper.from_array(np.zeros((8, 4, 3, 3), np.float32), "w3")  # grouped: [Cout, Cin/group, k, k]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("ConvTranspose", ["b", "w2"], ["c"], strides=[2, 2]),
        helper.make_node("Conv", ["b", "w3"], ["d"], group=2, pads=[1, 1, 1, 1]),
        helper.make_node("MatMul", ["m", "n"], ["e"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"]),
         helper.make_tensor_value_info("m", TensorProto.FLOAT, [2, 5]),
         helper.make_tensor_value_info("n", TensorProto.FLOAT, [5, 7])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("c", "d", "e")],
        [w1, w2, w3])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_macs_of_conv_transposed_grouped_conv_and_matmul(tmp_path):
    cost = graph_cost(_model(tmp_path), {"x": (1, 3, 10, 12), "m": (2, 5), "n": (5, 7)})
    conv = 8 * 10 * 12 * (3 * 3 * 3) + 8 * 10 * 12 * (4 * 3 * 3)  # out elements x (Cin/group * k * k)
    transposed = 8 * 10 * 12 * (4 * 2 * 2)  # in elements x (Cout * k * k)
    assert cost.by_op == {"Conv": conv, "ConvTranspose": transposed, "MatMul": 2 * 7 * 5}
    assert cost.macs == conv + transposed + 70 and cost.uncounted == {"Relu": 1}
    assert cost.gflops == pytest.approx(2 * cost.macs / 1e9)
    # the count follows the input size
    assert graph_cost(_model(tmp_path), {"x": (1, 3, 20, 24), "m": (2, 5), "n": (5, 7)}).by_op["Conv"] == 4 * conv


def test_missing_or_wrong_input_shapes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="give the shape of graph input 'm'"):
        graph_cost(_model(tmp_path), {"x": (1, 3, 10, 12), "n": (5, 7)})
    with pytest.raises(ValueError, match="has 4 dims"):
        graph_cost(_model(tmp_path), {"x": (1, 3, 10), "m": (2, 5), "n": (5, 7)})


def test_shapes_only_a_run_tells_come_from_one_run(tmp_path):
    """A resize to a size given at run time (as the SSD's TensorFlow graph resizes to 300x300
    inside): shape inference cannot size the convolution, one run can."""
    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    roi = numpy_helper.from_array(np.zeros((0,), np.float32), "roi")
    scales = numpy_helper.from_array(np.zeros((0,), np.float32), "scales")
    nodes = [helper.make_node("Resize", ["x", "roi", "scales", "size"], ["r"], mode="nearest"),
             helper.make_node("Conv", ["r", "w"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"]),
                     helper.make_tensor_value_info("size", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, roi, scales])
    path = tmp_path / "resize.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    shapes = {"x": (1, 3, 20, 30), "size": (4,)}
    with pytest.raises(ValueError, match="unknown"):
        graph_cost(path, shapes)
    feed = {"x": np.zeros((1, 3, 20, 30), np.float32), "size": np.array([1, 3, 8, 6], np.int64)}
    assert graph_cost(path, shapes, feed).macs == 4 * 8 * 6 * (3 * 3 * 3)
