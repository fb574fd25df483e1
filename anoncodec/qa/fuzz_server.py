"""Send malformed requests to a running tritonserver and check each answer, its health and memory.

May import numpy, anoncodec's errors and the qa cases; ``tritonclient`` (extra ``serve``)
and ``psutil`` (extra ``dev``) lazily; never torch.

Every case must end *accepted* (a well-formed result, :data:`~anoncodec.qa.fuzz_report.ACCEPTED`)
or *rejected* with ``INVALID_ARGUMENT``; anything else is a failure: another gRPC status
(``INTERNAL``, ``UNAVAILABLE``), a request over its deadline, a server that is no longer
ready, or a valid request that is not accepted. A rejection's reason is the code the
server tags its message with (:func:`~anoncodec.errors.tag`, e.g. ``[packet:crc]``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from anoncodec.errors import parse_tag, require
from anoncodec.qa.fuzz_report import ACCEPTED, FAILURE, REJECTED, FuzzReport
from anoncodec.qa.fuzz_requests import ServedCase, TensorSpec

__all__ = ["fuzz_server", "served_reason", "process_tree_rss"]

logger = logging.getLogger(__name__)


def served_reason(message: str, status: str = "INVALID_ARGUMENT") -> str:
    """The reason code tagged in a server's error ``message`` (``"crc"``), else ``status``."""
    found = parse_tag(message or "")
    return found[1] if found else status


def process_tree_rss(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MiB (tritonserver + python stubs)."""
    psutil = require("psutil", "dev")
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def _grpc_input(grpcclient, spec: TensorSpec):
    tensor = grpcclient.InferInput(spec.name, list(spec.array.shape), spec.datatype)
    tensor.set_data_from_numpy(spec.array)
    if spec.shape is not None:
        tensor.set_shape(list(spec.shape))
    if spec.raw is not None:
        tensor._raw_content = spec.raw  # malformed wire bytes: tritonclient has no public way
    return tensor


def _check_answer(result, case: ServedCase) -> str:
    """'' if the answer follows the serving contract (docs/ARCHITECTURE.md), else what is wrong."""
    names = {o.name for o in result.get_response().outputs}
    expected = {"ANONYMIZED", "BOXES", "SCORES"} | ({"BITS"} if case.model == "anonymize_frame" else set())
    if names != expected:
        return f"outputs {sorted(names)}; expected {sorted(expected)}"
    frame, boxes, scores = (result.as_numpy(n) for n in ("ANONYMIZED", "BOXES", "SCORES"))
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        return f"ANONYMIZED {frame.dtype} {list(frame.shape)}"
    if boxes.ndim != 2 or boxes.shape[1:] != (4,) or scores.shape != (boxes.shape[0],):
        return f"BOXES {list(boxes.shape)} / SCORES {list(scores.shape)}"
    return ""


def fuzz_server(url: str, cases: Sequence[ServedCase], good: Sequence[ServedCase], *, pid: int | None = None,
                timeout_s: float = 30.0, check_every: int = 25, warmup: int = 0,
                client_kwargs: dict | None = None) -> FuzzReport:
    """Send ``cases`` to a running server and check each answer, its readiness and memory.

    Args:
        url: gRPC address.
        cases: requests to send (:func:`served_cases`).
        good: valid requests; every ``check_every`` cases the server must be ready and
            answer each of them.
        pid: tritonserver's pid, to sample the RSS of it and its python stubs (needs psutil).
        timeout_s: client deadline per request; a case over it is a failure (a hang).
        check_every: cases between readiness checks.
        warmup: the first ``warmup`` cases are run before the ``before`` memory sample
            (allocators and shared memory grow once) and are not counted.
        client_kwargs: extra ``tritonclient.grpc.InferenceServerClient`` arguments (TLS).

    Returns:
        The report; ``memory`` has ``before_mib``, ``after_mib``, ``peak_mib`` and the
        ``samples`` (``[cases, MiB]`` after each health check) when ``pid`` is given, and
        ``stopped_at`` is set if the server stopped answering.
    """
    grpcclient = require("tritonclient.grpc", "serve")
    utils = require("tritonclient.utils", "serve")
    report = FuzzReport("server")
    samples: list[float] = []
    series: list[list[float]] = []  # [cases so far, MiB]

    def sample() -> float | None:
        if pid is None:
            return None
        value = process_tree_rss(pid)
        samples.append(value)
        series.append([report.cases, round(value, 1)])
        return value

    def send(client, case: ServedCase) -> tuple[str, str]:
        try:
            inputs = [_grpc_input(grpcclient, t) for t in case.inputs]
        except Exception as exc:  # the client library refused to build it: not a server test
            return "skipped", f"tritonclient refused: {exc}"
        try:
            result = client.infer(case.model, inputs, client_timeout=timeout_s)
        except utils.InferenceServerException as exc:
            status = str(exc.status() or "").rsplit(".", 1)[-1]
            if status == "INVALID_ARGUMENT" and case.expect != "accept":
                return REJECTED, served_reason(exc.message(), status)
            return FAILURE, f"{status or 'no status'}: {exc.message()}"
        if case.expect == "reject":
            return FAILURE, "a malformed request was answered as if valid"
        problem = _check_answer(result, case)
        return (FAILURE, problem) if problem else (ACCEPTED, "")

    def healthy(client) -> str:
        try:
            if not client.is_server_ready():
                return "server not ready"
            for g in good:
                outcome, why = send(client, g)
                if outcome != ACCEPTED:
                    return f"valid {g.kind} request failed: {why}"
        except utils.InferenceServerException as exc:
            return f"health check failed: {exc}"
        return ""

    with grpcclient.InferenceServerClient(url, **(client_kwargs or {})) as client:
        problem = healthy(client)
        if problem:
            raise ConnectionError(f"fuzz_server: the server at {url} is not healthy before fuzzing: {problem}")
        for case in cases[:warmup]:
            send(client, case)
        before = sample()
        if before is not None:
            report.memory["before_mib"] = round(before, 1)
        start = time.perf_counter()
        for i, case in enumerate(cases[warmup:], 1):
            t0 = time.perf_counter()
            outcome, why = send(client, case)
            seconds = time.perf_counter() - t0
            if outcome == "skipped":
                logger.info("fuzz server: %s skipped: %s", case.kind, why)
                report.skipped += 1
                continue
            report.record(case.kind, outcome, seconds, why, case.head())
            if i % check_every == 0 or i == len(cases) - warmup:
                problem = healthy(client)
                sample()
                if problem:
                    report.record("health-check", FAILURE, 0.0, f"after case {i} ({case.kind}): {problem}")
                    report.memory["stopped_at"] = i
                    break
        report.elapsed_s = time.perf_counter() - start
    if samples:
        report.memory.update(after_mib=round(samples[-1], 1), peak_mib=round(max(samples), 1))
        report.memory["samples"] = series  # type: ignore[assignment]
    return report
