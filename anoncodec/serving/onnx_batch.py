"""Give a one-input ONNX model a dynamic batch dimension, and prove that it batches correctly.

Triton's dynamic batcher (``max_batch_size > 0``) needs models whose first dimension is
free. The codec's own ONNX files are exported that way; YOLOv8 detectors usually come with
a fixed batch of 1 (ultralytics' default), baked into the input shape and into the
``Reshape`` targets of the detection head (``[1, 4+K, -1]``). This module rewrites both:
the input/output batch becomes a symbol, and a ``Reshape`` target that starts with 1
starts with 0 instead, which ONNX defines as "copy this dimension from the input".
:func:`batch_error` then runs the result on a batch of two different images and compares
with the original run one image at a time, so a graph that this rewrite cannot handle is
caught at export instead of giving wrong boxes in production.

Needs ``onnx`` (extra ``export``) and onnxruntime; never torch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from anoncodec.errors import ExportError, require

__all__ = ["has_dynamic_batch", "make_batch_dynamic", "batch_error"]

logger = logging.getLogger(__name__)

BATCH = "batch"


def _graph_input(model):
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ExportError(f"expected an ONNX model with one input, found {len(inputs)}")
    return inputs[0]


def has_dynamic_batch(path: str | Path) -> bool:
    """Whether the first dimension of the model's (single) input is not a fixed number."""
    onnx = require("onnx", "export")
    dims = _graph_input(onnx.load(str(path), load_external_data=False)).type.tensor_type.shape.dim
    return bool(dims) and not dims[0].HasField("dim_value")


def make_batch_dynamic(source: str | Path, dest: str | Path) -> int:
    """Write ``source`` to ``dest`` with a symbolic batch dimension.

    Args:
        source: ONNX model with one input whose first dimension is 1 (or already dynamic).
        dest: where to write the rewritten model (may equal ``source``).

    Returns:
        How many ``Reshape`` targets were rewritten.

    Raises:
        ExportError: the input's batch dimension is fixed at a value other than 1.
    """
    onnx = require("onnx", "export")
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    dims = _graph_input(model).type.tensor_type.shape.dim
    if dims and dims[0].HasField("dim_value") and dims[0].dim_value != 1:
        raise ExportError(f"{source}: input batch dimension is fixed at {dims[0].dim_value}; expected 1 or "
                          "dynamic")
    for value in [_graph_input(model), *graph.output]:
        shape = value.type.tensor_type.shape
        if shape.dim:
            shape.dim[0].Clear()
            shape.dim[0].dim_param = BATCH
    # Intermediate shapes recorded at export time still say batch 1: drop them, ONNX
    # Runtime infers them again.
    del graph.value_info[:]

    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    initializers = {i.name: i for i in graph.initializer}
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
            continue  # 0 would mean a literal zero there
        target = node.input[1]
        if target in initializers:
            tensor = initializers[target]
        elif target in constants:
            tensor = next(a.t for a in constants[target].attribute if a.name == "value")
        else:
            continue  # computed at run time from Shape: already follows the batch
        shape = numpy_helper.to_array(tensor)
        if shape.ndim == 1 and shape.size >= 2 and shape[0] == 1:
            new = shape.copy()
            new[0] = 0
            tensor.CopyFrom(numpy_helper.from_array(new.astype(shape.dtype), tensor.name))
            rewritten += 1
    onnx.checker.check_model(model)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest))
    logger.info("%s: batch dimension made dynamic (%d reshape targets rewritten)", dest, rewritten)
    return rewritten


def batch_error(batched: str | Path, reference: str | Path, item_shape: tuple[int, ...],
                batch: int = 2, seed: int = 0) -> float:
    """Largest difference between ``batched`` on a batch and ``reference`` item by item.

    Args:
        batched: ONNX model with a dynamic batch dimension.
        reference: the same model, run one item at a time (batch 1).
        item_shape: shape of one input item without the batch dimension, e.g. ``(3, 640, 640)``.
        batch: how many different random items to stack.
        seed: random seed of the items.

    Returns:
        The max abs difference over all outputs, relative to the reference's max abs value.

    Raises:
        ExportError: ONNX Runtime cannot run ``batched`` on a batch.
    """
    from anoncodec.detectors._onnx import ort_session

    rng = np.random.default_rng(seed)
    x = rng.random((batch, *item_shape), dtype=np.float32)
    ref = ort_session(reference)
    inp = ref.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    expected = np.concatenate([ref.run(None, {inp.name: x[i:i + 1].astype(dtype)})[0] for i in range(batch)])
    session = ort_session(batched)
    try:
        got = session.run(None, {session.get_inputs()[0].name: x.astype(dtype)})[0]
    except Exception as exc:
        raise ExportError(f"{batched} cannot run a batch of {batch}: {exc}") from exc
    if got.shape != expected.shape:
        raise ExportError(f"{batched} returns {list(got.shape)} for a batch of {batch}; expected "
                          f"{list(expected.shape)}")
    scale = max(float(np.abs(expected).max()), 1e-12)
    return float(np.abs(got.astype(np.float64) - expected).max() / scale)
