"""The camera client's Prometheus metrics (:class:`CameraMetrics`) and their ``/metrics`` server.

``prometheus_client`` (imported when a :class:`CameraMetrics` is created) and anoncodec's
errors and ``edge.results``.
"""

from __future__ import annotations

from anoncodec.edge.results import FrameResult
from anoncodec.errors import ConfigError, require

__all__ = ["CameraMetrics"]


class CameraMetrics:
    """The client's Prometheus metrics, in their own registry (several clients per process are fine).

    Args:
        mode: value of the ``mode`` label.
        registry: a ``prometheus_client.CollectorRegistry`` (default: a new one).
    """

    def __init__(self, mode: str, registry=None) -> None:
        prom = require("prometheus_client", "serve")
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        labels = ["mode"]
        kw = {"registry": self.registry, "labelnames": labels}
        self.latency = prom.Histogram(
            "anoncodec_camera_latency_seconds",
            "End-to-end latency per frame: encoding (packets mode), transfer, server and retries",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0), **kw).labels(mode)
        self.bytes = prom.Histogram(
            "anoncodec_camera_bytes_per_frame", "Request payload per frame sent (raw frame or packet), bytes",
            buckets=tuple(2.0**k for k in range(8, 26, 2)), **kw).labels(mode)
        self.sent = prom.Counter("anoncodec_camera_frames_sent", "Frames sent to the server (first attempts)",
                                 **kw).labels(mode)
        self.failed = prom.Counter("anoncodec_camera_frames_failed", "Frames that failed after all retries",
                                   **kw).labels(mode)
        self.dropped = prom.Counter("anoncodec_camera_frames_dropped",
                                    "Frames dropped because the buffer was full (when_full drop-newest/drop-oldest)",
                                    **kw).labels(mode)
        self.retries = prom.Counter("anoncodec_camera_retries", "Requests retried after a retryable error",
                                    **kw).labels(mode)
        self.in_flight = prom.Gauge("anoncodec_camera_frames_in_flight", "Frames sent and not yet delivered",
                                    **kw).labels(mode)
        self.buffered = prom.Gauge("anoncodec_camera_frames_buffered",
                                   "Frames read and waiting in the buffer (for a slot or for the server)",
                                   **kw).labels(mode)
        self.outages = prom.Counter("anoncodec_camera_server_outages",
                                    "Times the server became unreachable after it had answered", **kw).labels(mode)
        self.reachable = prom.Gauge("anoncodec_camera_server_reachable",
                                    "1 unless the client is waiting for an unreachable server", **kw).labels(mode)
        self.heads_erased = prom.Counter("anoncodec_camera_heads_erased",
                                         "Heads erased from the latent by the guaranteed mode (--guard)",
                                         **kw).labels(mode)
        self.reachable.set(1)
        self._server = None

    def record(self, result: FrameResult) -> None:
        """Observe one delivered frame: dropped, or its payload and then its latency (ok) or failure."""
        if result.status == "dropped":
            self.dropped.inc()
            return
        self.bytes.observe(result.bytes_sent)
        if result.status == "ok":
            self.latency.observe(result.latency_ms / 1000)
        else:
            self.failed.inc()

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Expose ``/metrics`` on ``addr:port`` in a daemon thread; returns the bound port."""
        prom = require("prometheus_client", "serve")
        try:
            started = prom.start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {addr}:{port} ({exc}); choose another --metrics-port") from exc
        self._server = started[0] if isinstance(started, tuple) else None
        return self._server.server_port if self._server is not None else port

    def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()
