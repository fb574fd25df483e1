"""The ``TritonPythonModel`` behind every python-backend stage of ``model_repository/``.

Imports ``triton_python_backend_utils`` lazily (it exists only inside Triton's python
stub) and :mod:`anoncodec.serving.runtime`; never torch. A ``model.py`` is then::

    from anoncodec.serving.python_model import stage_model
    TritonPythonModel = stage_model("quantize")

after it has put the folders named by ``$ANONCODEC_SYS_PATH`` (:data:`SYS_PATH_ENV`: the
venv's site-packages and the source tree, exported by the launcher) on ``sys.path``: the
stub runs in isolated mode and ignores ``PYTHONPATH``, and a ``model.py`` cannot import
anoncodec before that, so each one does it inline.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

__all__ = ["SYS_PATH_ENV", "stage_model"]

# os.pathsep-separated folders the launcher exports for model.py files (venv site-packages,
# the source tree); each model.py reads it before importing anoncodec.
SYS_PATH_ENV = "ANONCODEC_SYS_PATH"


def stage_model(stage: str) -> type:
    """A ``TritonPythonModel`` class that serves :class:`~anoncodec.serving.runtime.Stage` ``stage``.

    ``initialize`` reads the config (output dtypes, string parameters) and the stage's
    files; ``execute`` answers every request with exactly one response: an
    :class:`~anoncodec.errors.AnoncodecError` becomes ``INVALID_ARG`` for that request
    only, its message led by the error's :func:`~anoncodec.errors.tag` (``[packet:crc]``)
    when it has a reason, anything else ``INTERNAL`` with the traceback in the server log.
    """

    class TritonPythonModel:
        def initialize(self, args: dict) -> None:
            import triton_python_backend_utils as pb_utils

            from anoncodec.serving.runtime import load_stage

            self.pb = pb_utils
            self.log = pb_utils.Logger
            config = json.loads(args["model_config"])
            self.model_name = args["model_name"]
            params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
            version_dir = Path(args["model_repository"]) / args["model_version"]
            self.stage = load_stage(stage, version_dir, params)
            # a stage under the sequence batcher also gets its control tensors (START, END, CORRID)
            controls = config.get("sequence_batching", {}).get("control_input", [])
            self.inputs = [i["name"] for i in config["input"]] + [c["name"] for c in controls]
            self.outputs = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}
            self.metrics = self._metrics()
            self.log.log_info(f"{self.model_name}: stage {stage} ready ({version_dir})")

        def _metrics(self):
            pb = self.pb
            try:
                requests = pb.MetricFamily(
                    name="anoncodec_stage_requests_total",
                    description="Requests handled by anoncodec python stages, by outcome",
                    kind=pb.MetricFamily.COUNTER)
                seconds = pb.MetricFamily(
                    name="anoncodec_stage_seconds_total",
                    description="Time spent inside anoncodec python stages (seconds)",
                    kind=pb.MetricFamily.COUNTER)
            except Exception as exc:  # metrics must never stop a model from loading
                self.log.log_warn(f"{self.model_name}: no custom metrics ({exc})")
                return None
            # the families must outlive their metrics: keep references to both
            self.metric_families = (requests, seconds)
            labels = lambda outcome: {"stage": self.model_name, "outcome": outcome}  # noqa: E731
            return {"ok": requests.Metric(labels=labels("ok")),
                    "invalid": requests.Metric(labels=labels("invalid")),
                    "error": requests.Metric(labels=labels("error")),
                    "seconds": seconds.Metric(labels={"stage": self.model_name})}

        def _count(self, outcome: str, seconds: float) -> None:
            if not self.metrics:
                return
            try:
                self.metrics[outcome].increment(1)
                self.metrics["seconds"].increment(seconds)
            except Exception as exc:  # never fail a request because of a metric
                self.log.log_warn(f"{self.model_name}: metric update failed ({exc})")

        def _inputs(self, request) -> dict:
            arrays = {}
            for name in self.inputs:
                tensor = self.pb.get_input_tensor_by_name(request, name)
                if tensor is None:
                    raise _missing(name)
                arrays[name] = tensor.as_numpy()
            return arrays

        def _respond(self, outcome, seconds: float):
            from anoncodec.errors import AnoncodecError, tag

            pb = self.pb
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                tensors = [pb.Tensor(name, outcome[name].astype(dtype, copy=False))
                           for name, dtype in self.outputs.items()]
                self._count("ok", seconds)
                return pb.InferenceResponse(output_tensors=tensors)
            except AnoncodecError as exc:
                self._count("invalid", seconds)
                return pb.InferenceResponse(error=pb.TritonError(f"{self.model_name}: {tag(exc)}{exc}",
                                                                 pb.TritonError.INVALID_ARG))
            except Exception as exc:  # a bug: report it, keep serving
                self._count("error", seconds)
                self.log.log_error(f"{self.model_name}: {''.join(traceback.format_exception(exc))}")
                return pb.InferenceResponse(error=pb.TritonError(
                    f"{self.model_name}: internal error {type(exc).__name__}: {exc}", pb.TritonError.INTERNAL))

        def execute(self, requests: list) -> list:
            # With dynamic batching Triton hands over several requests at once; the stage
            # runs those of equal shape as one batch (call_many) and answers each one.
            start = time.perf_counter()
            arrays: list = []
            for request in requests:
                try:
                    arrays.append(self._inputs(request))
                except Exception as exc:
                    arrays.append(exc)
            valid = [a for a in arrays if not isinstance(a, Exception)]
            results = iter(self.stage.call_many(valid))
            outcomes = [a if isinstance(a, Exception) else next(results) for a in arrays]
            seconds = (time.perf_counter() - start) / max(1, len(requests))
            return [self._respond(outcome, seconds) for outcome in outcomes]

        def finalize(self) -> None:
            self.stage.close()
            self.metrics = None
            self.metric_families = ()

    TritonPythonModel.__name__ = TritonPythonModel.__qualname__ = "TritonPythonModel"
    TritonPythonModel.__doc__ = f"Triton python model of the anoncodec stage {stage!r}."
    return TritonPythonModel


def _missing(name: str):
    from anoncodec.serving.stages import InvalidRequestError

    return InvalidRequestError(f"request has no input tensor {name!r}")
