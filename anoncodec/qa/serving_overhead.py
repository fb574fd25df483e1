"""In-process and gRPC access to the served ensembles, for measuring what Triton costs.

:class:`DirectPipeline` chains the very stage objects the python-backend models run
(:mod:`anoncodec.serving.runtime`, built from a repository's files and config parameters);
:class:`TritonCall` sends the same requests over gRPC (needs ``tritonclient``);
:func:`stats_snapshot` / :func:`stats_delta` read Triton's per-model statistics.
``benchmarks/serving_overhead.py`` puts them under load. May import numpy and anoncodec's
contract, edge.request and serving modules; ``tritonclient`` lazily.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["STATS_FIELDS", "DirectPipeline", "TritonCall", "config_parameters", "missing_model_files",
           "stats_delta", "stats_snapshot"]

STATS_FIELDS = ("queue", "compute_input", "compute_infer", "compute_output", "success")


def missing_model_files(repository: Path) -> list[Path]:
    """Files `anoncodec export` generates that ``repository`` lacks."""
    from anoncodec.serving.runtime import missing_files

    stages = ("frame_preprocess", "encoder", "quantize", "entropy_decode", "decoder", "detector")
    return [p for s in stages for p in missing_files(repository / s / "1", s)]


def config_parameters(config: Path) -> dict[str, str]:
    """The string ``parameters`` of a ``config.pbtxt`` (what Triton hands the python stage)."""
    from anoncodec.serving.model_config import read_model_config

    return read_model_config(config).parameters


# --- (b) the same stages in this process ----------------------------------------------------

class DirectPipeline:
    """Both ensembles as plain calls of the repository's stage objects.

    One instance and one lock per stage (Triton runs one instance of each model), and the
    time spent inside each stage is summed for the per-stage breakdown.
    """

    STAGES = ("frame_preprocess", "encoder", "quantize", "entropy_decode", "decoder",
              "decoder_postprocess", "detector", "detector_postprocess")

    def __init__(self, repository: Path) -> None:
        from anoncodec.serving.runtime import load_stage

        self.stages = {name: load_stage(name, repository / name / "1",
                                        config_parameters(repository / name / "config.pbtxt"))
                       for name in self.STAGES}
        self.locks = {name: threading.Lock() for name in self.STAGES}
        self._tally_lock = threading.Lock()
        self.reset_tally()

    def reset_tally(self) -> None:
        with self._tally_lock:
            self.tally = {name: [0, 0] for name in self.STAGES}  # calls, ns

    def stage_ms(self) -> dict[str, dict[str, float]]:
        with self._tally_lock:
            return {name: {"calls": calls, "mean_ms": ns / calls / 1e6}
                    for name, (calls, ns) in self.tally.items() if calls}

    def _run(self, name: str, **inputs: Any) -> dict[str, Any]:
        with self.locks[name]:
            t0 = time.perf_counter_ns()
            out = self.stages[name].run(inputs)
            elapsed = time.perf_counter_ns() - t0
        with self._tally_lock:
            self.tally[name][0] += 1
            self.tally[name][1] += elapsed
        return out

    def _detect(self, y_hat, size) -> dict[str, Any]:
        x_hat = self._run("decoder", y_hat=y_hat)["x_hat"]
        rec = self._run("decoder_postprocess", x_hat=x_hat, size=size)
        output = self._run("detector", images=rec["images"])["output"]
        det = self._run("detector_postprocess", output=output, letterbox=rec["letterbox"])
        return {"ANONYMIZED": rec["frame"], "BOXES": det["boxes"], "SCORES": det["scores"]}

    def anonymize_frame(self, frame_rgb) -> dict[str, Any]:
        pre = self._run("frame_preprocess", frame=frame_rgb)
        y = self._run("encoder", x=pre["x"])["y"]
        quant = self._run("quantize", y=y)
        return {**self._detect(quant["y_hat"], pre["size"]), "BITS": quant["bits"]}

    def analyze_bitstream(self, packet: bytes) -> dict[str, Any]:
        import numpy as np

        dec = self._run("entropy_decode", packet=np.array([packet], dtype=object))
        return self._detect(dec["y_hat"], dec["size"])

    def bits(self, frame_rgb) -> int:
        """BITS of one frame (preprocess, encoder, quantize only)."""
        pre = self.stages["frame_preprocess"].run({"frame": frame_rgb})
        y = self.stages["encoder"].run({"x": pre["x"]})["y"]
        return int(self.stages["quantize"].run({"y": y})["bits"][0])

    def close(self) -> None:
        for stage in self.stages.values():
            stage.close()


# --- (a) the ensembles over gRPC ------------------------------------------------------------

class TritonCall:
    """One worker's ``tritonclient.grpc`` client for one ensemble (a client per thread)."""

    def __init__(self, url: str, ensemble: str, timeout_s: float) -> None:
        import tritonclient.grpc as grpcclient

        from anoncodec.contract import ensemble as ensemble_spec
        from anoncodec.edge.request import requested_outputs

        self.ensemble, self.timeout_s = ensemble, timeout_s
        self.client = grpcclient.InferenceServerClient(url)
        self.names = ensemble_spec(ensemble).output_names
        self.outputs = requested_outputs(ensemble)

    def __call__(self, payload: Any) -> dict[str, Any]:
        from anoncodec.edge.request import request_inputs

        inputs = request_inputs(self.ensemble, payload)
        result = self.client.infer(self.ensemble, inputs, outputs=self.outputs, client_timeout=self.timeout_s)
        return {n: result.as_numpy(n) for n in self.names}

    def close(self) -> None:
        self.client.close()


def stats_snapshot(client) -> dict[str, dict[str, int]]:
    """``{model: {count, <field>_ns}}`` from Triton's statistics API (cumulative)."""
    data = client.get_inference_statistics(as_json=True)
    snapshot: dict[str, dict[str, int]] = {}
    for model in data.get("model_stats", []):
        stats = model.get("inference_stats", {})
        entry = snapshot.setdefault(model["name"], {"count": 0, **{f"{f}_ns": 0 for f in STATS_FIELDS}})
        entry["count"] += int(stats.get("success", {}).get("count", 0))
        for field in STATS_FIELDS:
            entry[f"{field}_ns"] += int(stats.get(field, {}).get("ns", 0))
    return snapshot


def stats_delta(before: dict, after: dict) -> dict[str, dict[str, float]]:
    """Per model that ran in between: calls and mean ms per call of each statistics field."""
    delta = {}
    for name, end in after.items():
        start = before.get(name, {})
        calls = end["count"] - start.get("count", 0)
        if calls <= 0:
            continue
        entry: dict[str, float] = {"calls": calls}
        for field in STATS_FIELDS:
            ns = end[f"{field}_ns"] - start.get(f"{field}_ns", 0)
            entry[f"{'total' if field == 'success' else field}_ms"] = ns / calls / 1e6
        delta[name] = entry
    return delta
