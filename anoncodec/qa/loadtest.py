"""Capacity measurement with Locust: the step load, per-step statistics and the capacity verdict.

Stdlib only (no locust, gevent, numpy or torch), so the locustfile, the runner script
``load_tests/run.py`` and unit tests share one implementation of the arithmetic.

The users follow a step load (:class:`~anoncodec.qa.step_load.StepLoad`, re-exported here).
Every request is recorded (start time on the load test's clock, ensemble, latency, ok)
and attributed to the step in which it *started*; the first ``settle_s`` seconds of each
step are left out so that requests spilling over from the previous load level do not
count. Per step and ensemble (and ``"all"``) the statistics are: throughput (completed
requests per second of the step's measured window), p50/p95/p99 latency and failures.
The *capacity* is the highest throughput of a step whose p95 stays within the latency SLO
with no failure.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anoncodec.errors import ConfigError
from anoncodec.qa.step_load import (
    STEP_LOAD_FLAGS,
    StepLoad,
    add_step_load_arguments,
    step_load_argv,
    step_load_from,
)

__all__ = [
    "ALL",
    "DEFAULT_SLO_MS",
    "StepLoad",
    "STEP_LOAD_FLAGS",
    "add_step_load_arguments",
    "step_load_from",
    "step_load_argv",
    "RequestRecord",
    "StepResult",
    "CapacityReport",
    "percentile",
    "summarize_steps",
    "find_capacity",
    "step_breached",
    "write_requests_csv",
    "read_requests_csv",
    "render_table",
]

#: name of the row that pools every ensemble of a step
ALL = "all"
#: default p95 latency objective per request, milliseconds. One ensemble call takes
#: 0.4-0.9 s on the 2-core CPU this project is developed on (the detector dominates), and
#: queueing doubles it at saturation; on a GPU pass a much smaller --slo-ms.
DEFAULT_SLO_MS = 2500.0

_REQUEST_FIELDS = ("start_s", "name", "latency_ms", "ok", "bytes", "error")


@dataclass(frozen=True)
class RequestRecord:
    """One request as the load generator saw it.

    Attributes:
        start_s: when it was sent, seconds on the load test's clock (0 = start of step 0).
        name: the ensemble called.
        latency_ms: until the response (or the error) arrived.
        ok: whether it succeeded.
        bytes: request payload size.
        error: why it failed ("" when ok).
    """

    start_s: float
    name: str
    latency_ms: float
    ok: bool
    bytes: int = 0
    error: str = ""


@dataclass(frozen=True)
class StepResult:
    """Statistics of one step for one ensemble (or :data:`ALL`).

    Attributes:
        step, users: which step and how many users ran in it.
        name: ensemble name or ``"all"``.
        requests: requests started in the measured window.
        failures: of those, failed.
        rps: completed requests per second of the window.
        p50_ms, p95_ms, p99_ms: latency percentiles of all of them (None without requests).
        window_s: length of the measured window.
    """

    step: int
    users: int
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    window_s: float

    def within_slo(self, slo_ms: float) -> bool:
        """p95 within ``slo_ms``, no failure and at least one request."""
        return self.requests > 0 and self.failures == 0 and self.p95_ms is not None and self.p95_ms <= slo_ms

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default); None if empty."""
    if not 0 <= q <= 100:
        raise ConfigError(f"percentile q={q}; expected 0..100")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _stats(step: int, users: int, name: str, records: list[RequestRecord], window_s: float) -> StepResult:
    latencies = [r.latency_ms for r in records]
    return StepResult(
        step=step, users=users, name=name, requests=len(records),
        failures=sum(not r.ok for r in records),
        rps=len(records) / window_s if window_s > 0 else 0.0,
        p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95), p99_ms=percentile(latencies, 99),
        window_s=window_s,
    )


def summarize_steps(records: Iterable[RequestRecord], load: StepLoad, names: Sequence[str] = (),
                    until_s: float | None = None) -> list[StepResult]:
    """Per-step statistics, one row per step and name, then (with several names) one
    :data:`ALL` row per step that pools them.

    Args:
        records: every request of the run.
        load: the staircase the run followed.
        names: ensembles to report even without requests (others found in ``records``
            are added in order of appearance).
        until_s: when the run actually stopped (an early stop ends the last step early);
            steps that never started are left out.

    Returns:
        Rows ordered by step, then name (``"all"`` last).
    """
    records = list(records)
    ordered = list(dict.fromkeys([*names, *(r.name for r in records)]))
    end = load.duration_s if until_s is None else min(until_s, load.duration_s)
    rows: list[StepResult] = []
    for step in range(load.n_steps):
        begin, stop = load.window(step)
        if step * load.step_s >= end:
            break
        stop = min(stop, end)
        window = max(stop - begin, 0.0)
        inside = [r for r in records if begin <= r.start_s < stop]
        for name in ordered:
            rows.append(_stats(step, load.users(step), name, [r for r in inside if r.name == name], window))
        if len(ordered) > 1:
            rows.append(_stats(step, load.users(step), ALL, inside, window))
    return rows


def find_capacity(rows: Iterable[StepResult], slo_ms: float, name: str = ALL) -> StepResult | None:
    """The row of ``name`` with the highest throughput among the steps within the SLO (None if none)."""
    within = [r for r in rows if r.name == name and r.within_slo(slo_ms)]
    return max(within, key=lambda r: r.rps, default=None)


def step_breached(records: Iterable[RequestRecord], load: StepLoad, step: int, slo_ms: float,
                  min_requests: int = 3) -> bool:
    """Whether ``step`` already shows that higher load is pointless: any failure, or a p95
    over ``slo_ms`` once it has ``min_requests`` requests (used to stop a run early)."""
    begin, stop = load.window(step)
    inside = [r for r in records if begin <= r.start_s < stop]
    if any(not r.ok for r in inside):
        return True
    if len(inside) < min_requests:
        return False
    p95 = percentile([r.latency_ms for r in inside], 95)
    return p95 is not None and p95 > slo_ms


def write_requests_csv(records: Iterable[RequestRecord], path: str | Path) -> Path:
    """Write one CSV row per request (``start_s,name,latency_ms,ok,bytes,error``)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_REQUEST_FIELDS)
        for r in records:
            writer.writerow([f"{r.start_s:.6f}", r.name, f"{r.latency_ms:.3f}", int(r.ok), r.bytes, r.error])
    return out


def read_requests_csv(path: str | Path) -> list[RequestRecord]:
    """Read what :func:`write_requests_csv` wrote.

    Raises:
        ConfigError: the file is missing or has other columns.
    """
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"request log {str(source)!r} does not exist; did the Locust run start?")
    with open(source, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != _REQUEST_FIELDS:
            raise ConfigError(f"{source} has columns {reader.fieldnames}; expected {list(_REQUEST_FIELDS)}")
        return [RequestRecord(float(row["start_s"]), row["name"], float(row["latency_ms"]), row["ok"] == "1",
                              int(row["bytes"]), row["error"]) for row in reader]


@dataclass
class CapacityReport:
    """The outcome of one step-load run: what was asked, every step, and the capacity.

    Attributes:
        slo_ms: the p95 latency objective.
        load: the staircase.
        steps: rows of :func:`summarize_steps`.
        capacity: name -> the best row within the SLO (None: no step met it).
        totals: name (and ``"all"``) -> (requests, failures) over the whole run, settle time included.
        meta: anything else worth keeping (server, frame size, versions).
    """

    slo_ms: float
    load: StepLoad
    steps: list[StepResult]
    capacity: dict[str, StepResult | None] = field(default_factory=dict)
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, records: Sequence[RequestRecord], load: StepLoad, slo_ms: float, names: Sequence[str] = (),
              until_s: float | None = None, meta: dict[str, Any] | None = None) -> CapacityReport:
        """Summarize ``records`` of a run that followed ``load``."""
        steps = summarize_steps(records, load, names, until_s)
        found = list(dict.fromkeys(r.name for r in steps))
        totals = {name: (sum(1 for r in records if r.name == name), sum(1 for r in records if r.name == name
                                                                        and not r.ok))
                  for name in found if name != ALL}
        totals[ALL] = (len(records), sum(1 for r in records if not r.ok))
        return cls(slo_ms, load, steps, {name: find_capacity(steps, slo_ms, name) for name in found},
                   totals, dict(meta or {}))

    @property
    def failures(self) -> int:
        """Failed requests over the whole run."""
        return self.totals.get(ALL, (0, 0))[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo_ms": self.slo_ms, "load": self.load.to_dict(), "steps": [r.to_dict() for r in self.steps],
            "capacity": {k: (None if v is None else v.to_dict()) for k, v in self.capacity.items()},
            "totals": {k: {"requests": v[0], "failures": v[1]} for k, v in self.totals.items()},
            "meta": self.meta,
        }

    def markdown(self) -> str:
        """The step table and the capacity lines, as Markdown."""
        lines = [render_table(self.steps, self.slo_ms), ""]
        for name, row in self.capacity.items():
            if row is None:
                lines.append(f"- capacity `{name}`: no step had p95 <= {self.slo_ms:.0f} ms with 0 failures")
            else:
                lines.append(f"- capacity `{name}`: **{row.rps:.2f} req/s** at {row.users} users "
                             f"(p50 {row.p50_ms:.0f} ms, p95 {row.p95_ms:.0f} ms, p99 {row.p99_ms:.0f} ms, "
                             f"0 failures; SLO p95 <= {self.slo_ms:.0f} ms)")
        requests, failures = self.totals.get(ALL, (0, 0))
        lines.append(f"- whole run: {requests} requests, {failures} failures")
        return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_table(rows: Iterable[StepResult], slo_ms: float | None = None) -> str:
    """A Markdown table: step, users, ensemble, requests, req/s, p50/p95/p99 ms, failures, SLO met."""
    head = "| step | users | ensemble | requests | req/s | p50 ms | p95 ms | p99 ms | failures |"
    rule = "|---:|---:|---|---:|---:|---:|---:|---:|---:|"
    if slo_ms is not None:
        head += " within SLO |"
        rule += "---|"
    lines = [head, rule]
    for r in rows:
        line = (f"| {r.step} | {r.users} | {r.name} | {r.requests} | {r.rps:.2f} | {_ms(r.p50_ms)} | "
                f"{_ms(r.p95_ms)} | {_ms(r.p99_ms)} | {r.failures} |")
        if slo_ms is not None:
            line += f" {'yes' if r.within_slo(slo_ms) else 'no'} |"
        lines.append(line)
    return "\n".join(lines)
