"""The one gRPC request builder: every caller of the served ensembles (camera client,
locustfile, benchmarks, fuzzer) turns a frame or a packet into Triton inputs here.

Works with ``tritonclient.grpc`` and ``tritonclient.grpc.aio`` alike (they share
``InferInput``); tritonclient is imported only when a request is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anoncodec.contract import FRAME, PACKET, EnsembleSpec, ensemble
from anoncodec.errors import require

__all__ = ["request_inputs", "requested_outputs", "payload_size"]


def _grpc():
    return require("tritonclient.grpc", "serve")


def request_inputs(spec: EnsembleSpec | str, payload: Any) -> list[Any]:
    """Inputs of one request to ``spec``: a uint8 ``[H, W, 3]`` RGB frame for
    ``anonymize_frame``, the packet's bytes for ``analyze_bitstream``."""
    spec = ensemble(spec) if isinstance(spec, str) else spec
    grpc = _grpc()
    tensor_spec = spec.input
    if tensor_spec == FRAME:
        frame = np.ascontiguousarray(payload)
        tensor = grpc.InferInput(FRAME.name, list(frame.shape), FRAME.datatype)
        tensor.set_data_from_numpy(frame)
    elif tensor_spec == PACKET:
        tensor = grpc.InferInput(PACKET.name, list(PACKET.dims), PACKET.datatype)
        tensor.set_data_from_numpy(np.array([bytes(payload)], dtype=object))
    else:  # pragma: no cover - a new ensemble input needs a branch here
        raise ValueError(f"no request builder for input {tensor_spec.name!r} of {spec.name!r}")
    return [tensor]


def requested_outputs(spec: EnsembleSpec | str) -> list[Any]:
    """``InferRequestedOutput`` for every output of ``spec``."""
    spec = ensemble(spec) if isinstance(spec, str) else spec
    grpc = _grpc()
    return [grpc.InferRequestedOutput(name) for name in spec.output_names]


def payload_size(payload: Any) -> int:
    """Bytes a request carries: the frame's pixels or the packet's length."""
    return int(payload.nbytes) if isinstance(payload, np.ndarray) else len(payload)
