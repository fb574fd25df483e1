"""What the camera client delivers: one :class:`FrameResult` per frame, in frame order, and
the :class:`CameraSummary` of a run, added up by a :class:`RunTally`.

Numpy only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FrameResult", "CameraSummary", "RunTally"]


@dataclass
class FrameResult:
    """The fate of one frame, delivered in frame order.

    Attributes:
        index, timestamp: from the source.
        status: ``"ok"``, ``"failed"`` or ``"dropped"`` (buffer full, see ``when_full``).
        bytes_sent: request payload size (raw frame or packet), 0 when dropped.
        attempts: requests made (1 + retries used, including resends after an outage).
        latency_ms: encoding (packets mode) plus the time from the frame taking its
            in-flight slot to the response: transfer, server, retries, outages; None unless ok.
        wait_ms: time the frame waited in the buffer for a slot (replaying a file faster
            than the server keeps up, or a server outage, makes this grow).
        boxes_xyxy: float32 ``[N, 4]``; scores: float32 ``[N]`` (empty unless ok).
        bits: entropy-coded latent size reported by ``anonymize_frame`` (frames mode).
        error: why it failed.
        anonymized: uint8 ``[H, W, 3]`` from the server (None unless ok); never written
            to the JSON lines.
    """

    index: int
    timestamp: float
    status: str
    bytes_sent: int = 0
    attempts: int = 0
    latency_ms: float | None = None
    wait_ms: float = 0.0
    boxes_xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    bits: int | None = None
    error: str | None = None
    anonymized: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """One JSON-lines record: no pixels."""
        return {
            "frame": self.index, "timestamp": round(self.timestamp, 6), "status": self.status,
            "boxes": [[round(float(v), 2) for v in box] for box in self.boxes_xyxy],
            "scores": [round(float(s), 4) for s in self.scores],
            "bytes_sent": self.bytes_sent, "bits": self.bits,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "wait_ms": round(self.wait_ms, 3),
            "attempts": self.attempts, "error": self.error,
        }


@dataclass(frozen=True)
class CameraSummary:
    """Totals of one :meth:`~anoncodec.edge.client.CameraClient.run`.

    Attributes:
        mode: ``"frames"`` or ``"packets"``.
        frames_ok, frames_failed, frames_dropped: counts.
        latency_p50_ms, latency_p95_ms: end-to-end latency of the ok frames (None if none).
        mean_bytes_per_frame: mean payload of the frames sent (None if none was sent).
        retries: retries made in all.
        elapsed_s: wall time of the run; fps: delivered frames per second.
        last_error: the last failure's message, if any.
        outages: times the server became unreachable after it had answered.
    """

    mode: str
    frames_ok: int
    frames_failed: int
    frames_dropped: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    mean_bytes_per_frame: float | None
    retries: int
    elapsed_s: float
    fps: float
    last_error: str | None = None
    outages: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunTally:
    """Running totals of the delivered :class:`FrameResult` of one run."""

    ok: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)
    last_error: str | None = None

    def add(self, result: FrameResult) -> None:
        """Count one delivered frame; a dropped frame adds no bytes, retries or latency."""
        if result.status == "dropped":
            self.dropped += 1
            return
        self.retries += result.attempts - 1
        self.bytes_sent.append(result.bytes_sent)
        if result.status == "ok":
            self.ok += 1
            self.latencies_ms.append(result.latency_ms)
        else:
            self.failed += 1
            self.last_error = result.error

    def summary(self, mode: str, elapsed_s: float, outages: int = 0) -> CameraSummary:
        """The :class:`CameraSummary` of a run of ``mode`` that took ``elapsed_s`` seconds."""
        lat = np.asarray(self.latencies_ms, dtype=float)
        p50, p95 = (float(np.percentile(lat, q)) for q in (50, 95)) if lat.size else (None, None)
        return CameraSummary(
            mode=mode, frames_ok=self.ok, frames_failed=self.failed, frames_dropped=self.dropped,
            latency_p50_ms=p50, latency_p95_ms=p95,
            mean_bytes_per_frame=float(np.mean(self.bytes_sent)) if self.bytes_sent else None,
            retries=self.retries, elapsed_s=elapsed_s, fps=(self.ok / elapsed_s) if elapsed_s > 0 else 0.0,
            last_error=self.last_error, outages=outages,
        )
