"""Multiply-accumulates of an ONNX graph at a given input size, from its own shapes.

Needs ``onnx`` (shape inference); never torch. Counts the operators that carry the
arithmetic of the codec and the detectors: ``Conv``, ``ConvTranspose``, ``MatMul`` and
``Gemm`` (one multiply-accumulate = 2 FLOPs); GDN's weighted sum is a 1x1 ``Conv`` in the
exported graph and counts. Element-wise work (GDN's square root and division, activations,
resizes, the detection head's sigmoid) is left out and named in the result, so a reader
sees what the count does not cover.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anoncodec.errors import require

__all__ = ["GraphCost", "graph_cost"]

COUNTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass(frozen=True)
class GraphCost:
    """What one run of a graph costs.

    Attributes:
        macs: multiply-accumulates of the counted operators.
        by_op: the same, per operator type.
        uncounted: operator type -> how many nodes of it were not counted.
    """

    macs: int
    by_op: dict[str, int]
    uncounted: dict[str, int] = field(default_factory=dict)

    @property
    def gflops(self) -> float:
        """Giga floating-point operations (2 per multiply-accumulate)."""
        return 2 * self.macs / 1e9


def _dims(value_info: Any) -> list[int] | None:
    dims = [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]
    return None if any(d is None or d <= 0 for d in dims) else dims


def _prod(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _fixed_inputs(model: Any, shapes: dict[str, tuple[int, ...]]) -> None:
    initializers = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        if inp.name not in shapes:
            raise ValueError(f"give the shape of graph input {inp.name!r} (inputs: {sorted(shapes)})")
        dims = inp.type.tensor_type.shape.dim
        if len(dims) != len(shapes[inp.name]):
            raise ValueError(f"input {inp.name!r} has {len(dims)} dims, got shape {shapes[inp.name]}")
        for d, v in zip(dims, shapes[inp.name]):
            d.ClearField("dim_param")
            d.dim_value = int(v)


def _run_shapes(model: Any, feed: dict[str, Any]) -> dict[str, list[int]]:
    """The shapes of the counted operators' inputs and outputs in one ONNX Runtime run on
    ``feed`` (for graphs whose shapes only a run tells: a resize inside, loops)."""
    onnx = require("onnx", "export")
    ort = require("onnxruntime", "edge")
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    graph_outputs = {o.name for o in probe.graph.output}
    initializers = {i.name for i in probe.graph.initializer}
    wanted = [n for node in probe.graph.node if node.op_type in COUNTED
              for n in (node.input[0], node.output[0]) if n not in initializers]
    for name in dict.fromkeys(wanted):
        if name not in graph_outputs:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return {n: list(v.shape) for n, v in zip(names, session.run(names, feed))}


def graph_cost(path: str | Path, shapes: dict[str, tuple[int, ...]], feed: dict[str, Any] | None = None) -> GraphCost:
    """Multiply-accumulates of the ONNX model at ``path`` with its inputs fixed to ``shapes``.

    Args:
        path: the ONNX file.
        shapes: input name -> shape.
        feed: input name -> array: when shape inference leaves a counted operator's shapes
            unknown (a TensorFlow graph that resizes its input inside), one ONNX Runtime run
            on it tells them.

    Raises:
        ValueError: an input's shape is missing or has the wrong rank, or neither shape
            inference nor ``feed`` tells a counted operator's shapes.
    """
    onnx = require("onnx", "export")
    model = onnx.load(str(path))
    _fixed_inputs(model, shapes)
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    graph = model.graph
    known = {v.name: _dims(v) for v in (*graph.input, *graph.value_info, *graph.output)}
    known.update({i.name: list(i.dims) for i in graph.initializer})
    if feed is not None and any(known.get(n) is None for node in graph.node if node.op_type in COUNTED
                                for n in (node.input[0], node.output[0])):
        ran = _run_shapes(model, feed)
        known.update({name: dims for name, dims in ran.items() if known.get(name) is None})
    by_op: Counter[str] = Counter()
    uncounted: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type not in COUNTED:
            uncounted[node.op_type] += 1
            continue
        shapes_in = [known.get(n) for n in node.input[:2]]
        out = known.get(node.output[0])
        if out is None or any(s is None for s in shapes_in):
            raise ValueError(f"{path}: shapes of {node.op_type} node {node.name!r} are unknown after inference")
        x, w = shapes_in
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":  # w: [Cout, Cin/group, k...]; every output element sums Cin/group * k...
            macs = _prod(out) * _prod(w[1:])
        elif node.op_type == "ConvTranspose":  # w: [Cin, Cout/group, k...]; every input element spreads
            macs = _prod(x) * _prod(w[1:])
        elif node.op_type == "Gemm":
            k = x[0] if attrs.get("transA", 0) else x[-1]
            macs = _prod(out) * int(k)
        else:  # MatMul: [..., M, K] x [..., K, N]
            macs = _prod(out) * int(x[-1])
        by_op[node.op_type] += macs
    return GraphCost(sum(by_op.values()), dict(by_op), dict(uncounted))
