"""What a fuzz run found: outcomes per case kind, rejection reasons, failures, memory.

Stdlib only. Every case ends in one of three outcomes: :data:`ACCEPTED` (a well-formed
result), :data:`REJECTED` (an :class:`~anoncodec.errors.AnoncodecError` in process,
``INVALID_ARGUMENT`` over gRPC) or :data:`FAILURE` (anything else: the bug a fuzzer looks
for).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ACCEPTED", "REJECTED", "FAILURE", "FuzzReport"]

logger = logging.getLogger(__name__)

ACCEPTED, REJECTED, FAILURE = "accepted", "rejected", "failure"


@dataclass
class FuzzReport:
    """What a fuzz run found.

    Attributes:
        target: ``"decoder"`` (in process) or ``"server"``.
        cases: cases run (warm-up excluded).
        outcomes: per case kind, counts of ``accepted``/``rejected``/``failure``.
        reasons: counts of rejection reasons: the error's ``reason`` code
            (:class:`~anoncodec.errors.PacketReason`; ``"other"`` without one), for the
            server the code tagged in the error message (else its gRPC status).
        failures: up to 50 failures: kind, detail, the first bytes of the input (hex).
        skipped: cases the client library refused to build (not sent).
        seconds: per case kind, total seconds.
        elapsed_s: wall time; slowest_s: slowest single case.
        memory: RSS samples in MiB (``before``/``after`` and the peak), see the target.
    """

    target: str
    cases: int = 0
    outcomes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    reasons: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)
    failure_count: int = 0
    skipped: int = 0
    seconds: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0
    slowest_s: float = 0.0
    slowest_kind: str | None = None
    memory: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure_count == 0

    def record(self, kind: str, outcome: str, seconds: float, why: str = "", data: bytes = b"") -> None:
        self.cases += 1
        self.outcomes[kind][outcome] += 1
        self.seconds[kind] += seconds
        if seconds > self.slowest_s:
            self.slowest_s, self.slowest_kind = seconds, kind
        if outcome == REJECTED:
            self.reasons[why] += 1
        elif outcome == FAILURE:
            self.failure_count += 1
            if len(self.failures) < 50:
                self.failures.append({"kind": kind, "detail": why[:2000], "input_hex": data[:64].hex(),
                                      "input_bytes": len(data)})
            logger.error("fuzz %s: %s failed: %s", self.target, kind, why[:300])

    def totals(self) -> Counter:
        total: Counter = Counter()
        for counts in self.outcomes.values():
            total.update(counts)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "cases": self.cases, "ok": self.ok, "totals": dict(self.totals()),
                "outcomes": {k: dict(v) for k, v in sorted(self.outcomes.items())},
                "reasons": dict(self.reasons.most_common()), "failure_count": self.failure_count,
                "skipped": self.skipped, "seconds_by_kind": {k: round(v, 3) for k, v in self.seconds.most_common()},
                "failures": self.failures, "elapsed_s": round(self.elapsed_s, 3),
                "slowest_s": round(self.slowest_s, 4), "slowest_kind": self.slowest_kind, "memory": self.memory}
