"""The camera client: stream frames to the Triton ensembles over async gRPC.

May import numpy, OpenCV, tritonclient, prometheus_client, tqdm and anoncodec's errors,
packet and edge modules; never torch, codec or serving (a unit test checks that importing
it does not load torch).

Two modes (DESIGN.md sections 2 and 4)::

    frames:   frame_rgb ==FRAME==> anonymize_frame   -> ANONYMIZED, BOXES, SCORES, BITS
    packets:  frame_rgb -> EdgeEncoder -> packet ==PACKET==> analyze_bitstream
                                                     -> ANONYMIZED, BOXES, SCORES

Pipeline::

    source -> read (+ encode, packets mode) -> buffer (<= buffer_size frames waiting)
           -> in flight (<= max_in_flight requests) -> delivered in frame order

The source is read (and, in packets mode, encoded) in order into a bounded buffer; each
frame then takes one of ``max_in_flight`` slots, its request runs concurrently with the
others, and the results are delivered strictly in frame order to the outputs (annotated
video of the *anonymized* frames, JSON lines of detections, Prometheus metrics, progress
bar). A slot is freed when its frame has been delivered, so at most ``max_in_flight +
buffer_size`` frames are held at once, in memory only. When the buffer is full,
``when_full`` decides: ``"block"`` stops reading until there is room, ``"drop-newest"``
(alias ``"drop"``) skips the new frame, ``"drop-oldest"`` evicts the oldest waiting frame
(never one already sent); dropped frames are counted and get a ``"dropped"`` line.

Faults: a request that fails because the server is overloaded or too slow (gRPC
``DEADLINE_EXCEEDED``, ``RESOURCE_EXHAUSTED``, ``ABORTED``) is retried after exponentially
growing waits (:func:`backoff_schedule`); after ``retries`` retries, or at once for a
rejected request (``INVALID_ARGUMENT``, unknown model, a protocol that needs a key), the
frame counts as failed. When a server that answered before becomes unreachable
(``UNAVAILABLE``: crashed, restarting, network down), the client holds every frame instead:
requests already sent wait, new frames wait in the buffer, and the model's readiness is
probed with the same backoff; once it is back they are sent again in frame order. Each
frame is delivered exactly once, even when a retried request had reached the server
before (its first answer was lost), because results are kept per frame, not per request.
After ``outage_timeout_s`` the held frames count as failed and the client fails fast
(per-frame retries) until the server answers again. A server that is unreachable from the
start is not waited for (frames fail after their retries: a wrong ``--url`` shows at once).

Raw frames are never written anywhere: failed and dropped frames only get a line in the
detections file; the video holds the server's anonymized frames.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anoncodec.contract import ANONYMIZED, BITS, BOXES, SCORES
from anoncodec.contract import MODES as CONTRACT_MODES
from anoncodec.edge.request import request_inputs, requested_outputs
from anoncodec.errors import (
    AnoncodecError,
    ConfigError,
    ExportError,
    RequestRejectedError,
    ServerUnavailableError,
    require,
)

if TYPE_CHECKING:
    from anoncodec.edge.encoder import EdgeEncoder

__all__ = [
    "MODES",
    "ClientConfig",
    "InferenceResult",
    "FrameResult",
    "CameraSummary",
    "RequestRejectedError",
    "ServerUnreachableError",
    "TritonInference",
    "CameraMetrics",
    "CameraClient",
    "backoff_schedule",
    "find_encoder_files",
    "draw_detections",
]

logger = logging.getLogger(__name__)

#: mode -> ensemble it calls (anoncodec.contract.MODES)
MODES = {mode: spec.name for mode, spec in CONTRACT_MODES.items()}
#: ``when_full`` policies; ``"drop"`` is the older name of ``"drop-newest"``
WHEN_FULL = ("block", "drop-newest", "drop-oldest", "drop")
# gRPC codes after which the same request may succeed later
RETRYABLE_STATUS = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")


@dataclass(frozen=True)
class ClientConfig:
    """Settings of :class:`CameraClient`; the ``anoncodec camera`` flags map onto these fields.

    Attributes:
        url: Triton gRPC address ``host:port``.
        mode: ``"frames"`` (send FRAME to ``anonymize_frame``) or ``"packets"`` (encode
            here, send PACKET to ``analyze_bitstream``).
        export_dir: where ``encoder.onnx``/``tables.npz`` (``anoncodec encode --onnx-dir``
            export) or a model repository (``encoder/1/model.onnx``,
            ``quantize/1/tables.npz``) are; packets mode only.
        max_in_flight: frames sent but not yet delivered, at most.
        when_full: what to do with a new frame when ``buffer_size`` frames already wait:
            ``"block"`` (stop reading until there is room), ``"drop-newest"`` (skip the new
            frame; ``"drop"`` is an alias) or ``"drop-oldest"`` (evict the oldest waiting
            frame). Dropped frames are counted (``frames_dropped``).
        retries: retries per frame after a retryable error (0: one attempt only).
        backoff_s: wait before the first retry, seconds; doubles (``backoff_factor``) per
            retry up to ``backoff_max_s``.
        backoff_factor: growth of the wait per retry.
        backoff_max_s: longest wait between two attempts.
        request_timeout_s: gRPC deadline of one attempt.
        output_video: annotated anonymized frames go here (``.avi``: MJPG, ``.mp4``: mp4v).
        detections: JSON-lines file, one line per frame.
        metrics_port: serve Prometheus metrics on this port (None: no server).
        metrics_addr: address the metrics server binds.
        progress: show a tqdm progress bar (on stderr).
        encoder_threads: ONNX Runtime intra-op threads of the packets-mode encoder (0: default).
        buffer_size: frames read but not yet sent, at most: they wait for a free slot, or
            for the server to come back after it became unreachable. Memory only: in
            frames mode each holds a raw frame (H*W*3 bytes), in packets mode a packet.
        outage_timeout_s: how long frames are held for a server that answered before and
            then became unreachable (0: not at all; they fail after ``retries``).
        tls: connect with TLS (the server runs with ``--tls-cert``).
        tls_ca: PEM CA bundle that signed the server's certificate (None: system roots).
        tls_cert: PEM client certificate (chain), for servers that require one (mutual TLS).
        tls_key: PEM private key of ``tls_cert``.
        guard: guaranteed mode (packets mode): CenterFace runs on the camera and the latent
            of every head it finds is erased before coding (:mod:`anoncodec.edge.guard`).
        guard_threshold: CenterFace score above which a face is erased.
        guard_margin: latent cells erased around each head.
    """

    url: str = "localhost:8001"
    mode: str = "frames"
    export_dir: str | None = "model_repository"
    max_in_flight: int = 4
    when_full: str = "block"
    retries: int = 3
    backoff_s: float = 0.5
    backoff_factor: float = 2.0
    backoff_max_s: float = 8.0
    request_timeout_s: float = 60.0
    output_video: str | None = None
    detections: str | None = None
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"
    progress: bool = False
    encoder_threads: int = 0
    buffer_size: int = 16
    outage_timeout_s: float = 120.0
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    guard: bool = False
    guard_threshold: float = 0.3
    guard_margin: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r}; expected one of {sorted(MODES)}")
        if self.when_full not in WHEN_FULL:
            raise ConfigError(f"when_full={self.when_full!r}; expected one of {list(WHEN_FULL)}")
        if self.max_in_flight < 1:
            raise ConfigError(f"max_in_flight={self.max_in_flight}; expected at least 1")
        if self.retries < 0:
            raise ConfigError(f"retries={self.retries}; expected 0 or more")
        if self.backoff_s < 0 or self.backoff_max_s < 0 or self.backoff_factor < 1:
            raise ConfigError(f"backoff_s={self.backoff_s}, backoff_factor={self.backoff_factor}, "
                              f"backoff_max_s={self.backoff_max_s}; expected waits >= 0 and a factor >= 1")
        if not self.request_timeout_s > 0:
            raise ConfigError(f"request_timeout_s={self.request_timeout_s}; expected a positive number")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port={self.metrics_port}; expected 0..65535")
        for name in ("output_video", "detections"):
            value = getattr(self, name)
            if value is not None and not Path(value).resolve().parent.is_dir():
                raise ConfigError(f"{name}={value!r}: its folder does not exist; create it first")
        if not (isinstance(self.buffer_size, int) and self.buffer_size >= 0):
            raise ConfigError(f"buffer_size={self.buffer_size!r}; expected an integer >= 0")
        if not self.outage_timeout_s >= 0:
            raise ConfigError(f"outage_timeout_s={self.outage_timeout_s!r}; expected seconds >= 0 (0: no waiting)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError(f"tls_cert={self.tls_cert!r}, tls_key={self.tls_key!r}: a client certificate "
                              "needs its key; give both (--tls-cert, --tls-key) or neither")
        for name in ("tls_ca", "tls_cert", "tls_key"):
            value = getattr(self, name)
            if value is not None and not self.tls:
                raise ConfigError(f"{name}={value!r} without tls=True; pass --tls to connect with TLS")
            if value is not None and not Path(value).is_file():
                raise ConfigError(f"{name}={value!r} is not a file; pass an existing PEM file")
        if self.guard and self.mode != "packets":
            raise ConfigError("guard=True needs mode='packets': the guaranteed mode erases heads in the camera's "
                              "own encoder (--mode packets --guard)")

    @property
    def drop_policy(self) -> str:
        """``when_full`` with the alias resolved: ``"block"``, ``"drop-newest"`` or ``"drop-oldest"``."""
        return "drop-newest" if self.when_full == "drop" else self.when_full

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClientConfig":
        return cls(**d)


def backoff_schedule(retries: int, initial_s: float, factor: float = 2.0, maximum_s: float = 8.0) -> list[float]:
    """Waits before each retry: ``initial_s * factor**k`` capped at ``maximum_s``, k = 0..retries-1.

    Example:
        >>> backoff_schedule(4, 0.5, 2.0, 3.0)
        [0.5, 1.0, 2.0, 3.0]
    """
    return [min(initial_s * factor**k, maximum_s) for k in range(retries)]


def find_encoder_files(export_dir: str | Path) -> tuple[Path, Path]:
    """Find the camera encoder and its entropy tables in an export folder or a model repository.

    Args:
        export_dir: a folder with ``encoder.onnx`` + ``tables.npz`` (``export_codec``) or a
            model repository with ``encoder/1/model.onnx`` + ``quantize/1/tables.npz``
            (``anoncodec export``).

    Returns:
        ``(encoder_onnx, tables_npz)``.

    Raises:
        ExportError: neither layout is found.
    """
    folder = Path(export_dir)
    layouts = ((folder / "encoder.onnx", folder / "tables.npz"),
               (folder / "encoder" / "1" / "model.onnx", folder / "quantize" / "1" / "tables.npz"))
    for encoder, tables in layouts:
        if encoder.is_file() and tables.is_file():
            return encoder, tables
    raise ExportError(f"no camera encoder in {str(folder)!r}: expected encoder.onnx + tables.npz or a model "
                      "repository with encoder/1/model.onnx + quantize/1/tables.npz; pass --export-dir with "
                      "the folder `anoncodec export` wrote (the server's model repository)")


@dataclass(frozen=True)
class InferenceResult:
    """What one ensemble call returned.

    Attributes:
        anonymized: uint8 ``[H, W, 3]`` RGB, the decoded (anonymized) frame.
        boxes_xyxy: float32 ``[N, 4]`` person boxes in frame pixels.
        scores: float32 ``[N]``.
        bits: size of the entropy-coded latent (``anonymize_frame`` only), else None.
    """

    anonymized: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    bits: int | None = None


class ServerUnreachableError(ServerUnavailableError):
    """The server did not answer at all (gRPC ``UNAVAILABLE``): down, restarting or unreachable."""


#: ``await infer(payload)``: payload is the uint8 frame (frames) or packet bytes (packets).
#: Raise :class:`ServerUnreachableError` when the server cannot be reached,
#: :class:`ServerUnavailableError` for another retryable failure and another
#: :class:`AnoncodecError` for a permanent one. An optional ``await infer.ready()``
#: (bool) tells whether the server is back after an outage.
InferFn = Callable[[Any], Awaitable[InferenceResult]]


class TritonInference:
    """Calls one ensemble with ``tritonclient.grpc.aio``; create and use inside one event loop.

    Args:
        url: gRPC address ``host:port``.
        mode: ``"frames"`` or ``"packets"``.
        timeout_s: deadline of one request.
        tls: connect with TLS.
        tls_ca, tls_cert, tls_key: PEM files: CA of the server's certificate (None: system
            roots), client certificate and key (mutual TLS).
        reconnect_s: ``(first, longest)`` wait of gRPC's reconnection attempts, seconds
            (None: gRPC's defaults, up to 120 s), so a restarted server is found quickly.
    """

    def __init__(self, url: str, mode: str, timeout_s: float = 60.0, tls: bool = False,
                 tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                 reconnect_s: tuple[float, float] | None = None) -> None:
        self.url, self.mode, self.timeout_s = url, mode, timeout_s
        self.tls, self.tls_ca, self.tls_cert, self.tls_key = tls, tls_ca, tls_cert, tls_key
        self.reconnect_s = reconnect_s
        self.model = MODES[mode]
        self._aio = require("tritonclient.grpc.aio", "serve")
        self._grpc = require("tritonclient.grpc", "serve")
        self._utils = require("tritonclient.utils", "serve")
        self._client = None
        self._outputs = requested_outputs(self.model)
        self._output_names = CONTRACT_MODES[mode].output_names

    def _input(self, payload: Any):
        return request_inputs(self.model, payload)[0]

    def _channel_args(self) -> list[tuple[str, int]]:
        keepalive = self._grpc.KeepAliveOptions()
        size = self._grpc.MAX_GRPC_MESSAGE_SIZE
        args = [("grpc.max_send_message_length", size), ("grpc.max_receive_message_length", size),
                ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
                ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
                ("grpc.keepalive_permit_without_calls", int(keepalive.keepalive_permit_without_calls)),
                ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data)]
        if self.reconnect_s is not None:
            first, longest = (max(100, int(1000 * s)) for s in self.reconnect_s)
            args += [("grpc.initial_reconnect_backoff_ms", first), ("grpc.min_reconnect_backoff_ms", first),
                     ("grpc.max_reconnect_backoff_ms", max(first, longest))]
        return args

    def _connect(self):
        if self._client is None:
            self._client = self._aio.InferenceServerClient(
                self.url, ssl=self.tls, root_certificates=self.tls_ca, private_key=self.tls_key,
                certificate_chain=self.tls_cert, channel_args=self._channel_args())
        return self._client

    def _error(self, exc) -> AnoncodecError:
        status = str(exc.status() or "").rsplit(".", 1)[-1]
        message = f"{self.model} at {self.url}: {status or 'error'}: {exc.message()}"
        if "restricted" in str(exc.message()):  # Triton answers UNAVAILABLE for a missing key
            return RequestRejectedError(f"{message} (this server requires a key for that protocol)")
        if status == "UNAVAILABLE":
            return ServerUnreachableError(message)
        if status in RETRYABLE_STATUS:
            return ServerUnavailableError(message)
        return RequestRejectedError(message)

    async def ready(self) -> bool:
        """Whether the server answers and the ensemble is ready (used to end an outage)."""
        try:
            return bool(await self._connect().is_model_ready(self.model, client_timeout=min(self.timeout_s, 5.0)))
        except self._utils.InferenceServerException:
            return False

    async def __call__(self, payload: Any) -> InferenceResult:
        client = self._connect()
        try:
            result = await client.infer(self.model, [self._input(payload)], outputs=self._outputs,
                                        client_timeout=self.timeout_s)
        except self._utils.InferenceServerException as exc:
            raise self._error(exc) from None
        bits = result.as_numpy(BITS.name) if BITS.name in self._output_names else None
        return InferenceResult(result.as_numpy(ANONYMIZED.name), result.as_numpy(BOXES.name),
                               result.as_numpy(SCORES.name), None if bits is None else int(bits[0]))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


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
    """Totals of one :meth:`CameraClient.run`.

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

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Expose ``/metrics`` on ``addr:port`` in a daemon thread; returns the bound port."""
        prom = require("prometheus_client", "serve")
        try:
            started = prom.start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {addr}:{port} ({exc}); choose another --metrics-port")
        self._server = started[0] if isinstance(started, tuple) else None
        return self._server.server_port if self._server is not None else port

    def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()


def draw_detections(frame_rgb: np.ndarray, boxes_xyxy: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Draw person boxes and scores on a copy of ``frame_rgb`` (uint8 ``[H,W,3]``); returns BGR uint8."""
    cv2 = require("cv2", "edge")
    image = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    for (x1, y1, x2, y2), score in zip(boxes_xyxy, scores):
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(image, p1, p2, (0, 255, 0), 2)
        cv2.putText(image, f"person {score:.2f}", (p1[0], max(p1[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (0, 255, 0), 1, cv2.LINE_AA)
    return image


class _VideoSink:
    """Annotated anonymized frames -> video file; opened at the first frame (its size)."""

    FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "XVID"}

    def __init__(self, path: str, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._writer = None

    def write(self, result: FrameResult) -> None:
        cv2 = require("cv2", "edge")
        image = draw_detections(result.anonymized, result.boxes_xyxy, result.scores)
        if self._writer is None:
            self.size = (image.shape[1], image.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*self.FOURCC.get(self.path.suffix.lower(), "MJPG"))
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                raise ConfigError(f"OpenCV cannot write the video {str(self.path)!r}; use a .avi or .mp4 name")
        if (image.shape[1], image.shape[0]) != self.size:  # image folders may mix sizes
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


@dataclass(eq=False)
class _Entry:
    """One frame between reading and delivery (``payload`` is dropped once it is sent)."""

    index: int
    timestamp: float
    payload: Any
    read_at: float
    encode_ms: float
    result: asyncio.Future
    holds_slot: bool = False


@dataclass
class _Tally:
    ok: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)
    last_error: str | None = None


class CameraClient:
    """Stream a frame source to Triton and collect anonymized frames and detections in order.

    Args:
        config: see :class:`ClientConfig`.
        infer: the request function (default: :class:`TritonInference` on ``config.url``);
            tests inject a fake one.
        encoder: packets mode: an :class:`~anoncodec.edge.EdgeEncoder` (default: loaded
            from ``config.export_dir``).
        sleep: the coroutine that waits between retries (default ``asyncio.sleep``).

    Example:
        >>> with CameraClient(ClientConfig(mode="packets", detections="d.jsonl")) as client:
        ...     summary = client.run(open_source("clip.avi", max_frames=100))
    """

    def __init__(self, config: ClientConfig = ClientConfig(), infer: InferFn | None = None,
                 encoder: "EdgeEncoder | None" = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self._infer = infer
        self._sleep = sleep
        self.encoder = encoder
        if config.mode == "packets" and encoder is None:
            from anoncodec.edge.encoder import EdgeEncoder

            if config.export_dir is None:
                raise ConfigError("packets mode needs export_dir (--export-dir) with the camera encoder")
            guard = None
            if config.guard:
                from anoncodec.edge.guard import FaceGuard, GuardConfig

                guard = FaceGuard(GuardConfig(config.guard_threshold, config.guard_margin))
            self.encoder = EdgeEncoder(*find_encoder_files(config.export_dir), threads=config.encoder_threads,
                                       guard=guard)
        self.delays = backoff_schedule(config.retries, config.backoff_s, config.backoff_factor,
                                       config.backoff_max_s)
        self.metrics = CameraMetrics(config.mode)
        self._failing = False
        self._outage_count = 0
        self.metrics_port: int | None = None
        if config.metrics_port is not None:
            self.metrics_port = self.metrics.serve(config.metrics_port, config.metrics_addr)
            logger.info("camera metrics on http://%s:%d/metrics", config.metrics_addr, self.metrics_port)

    # -- public API --------------------------------------------------------------------

    def run(self, source: Iterable, stop: threading.Event | None = None,
            on_result: Callable[[FrameResult], None] | None = None) -> CameraSummary:
        """Stream every frame of ``source`` and wait for all results.

        Args:
            source: a :class:`~anoncodec.edge.sources.FrameSource` (or any iterable of
                :class:`~anoncodec.edge.sources.Frame`); not closed here.
            stop: set it (e.g. from a signal handler) to stop reading; frames already sent
                are still delivered.
            on_result: called with each :class:`FrameResult`, in frame order.

        Returns:
            The run's :class:`CameraSummary`.
        """
        return asyncio.run(self.run_async(source, stop, on_result))

    async def run_async(self, source: Iterable, stop: threading.Event | None = None,
                        on_result: Callable[[FrameResult], None] | None = None) -> CameraSummary:
        """:meth:`run` inside an already running event loop."""
        tqdm = require("tqdm", "edge").tqdm
        c = self.config
        stop = stop or threading.Event()
        tally = _Tally()
        length = getattr(source, "length", None)
        fps = getattr(source, "native_fps", None) or getattr(source, "fps", None) or 10.0
        video = _VideoSink(c.output_video, fps) if c.output_video else None
        detections = open(c.detections, "w") if c.detections else None
        bar = tqdm(total=length, disable=not c.progress, unit="frame", desc=f"camera ({c.mode})", leave=False)
        own_infer = self._infer is None
        infer = self._infer or TritonInference(c.url, c.mode, c.request_timeout_s, tls=c.tls, tls_ca=c.tls_ca,
                                               tls_cert=c.tls_cert, tls_key=c.tls_key,
                                               reconnect_s=(c.backoff_s, c.backoff_max_s))
        start = time.perf_counter()

        def emit(result: FrameResult) -> None:
            self._count(result, tally)
            if result.status == "ok" and video is not None:
                video.write(result)
            if detections is not None:
                detections.write(json.dumps(result.to_json()) + "\n")
            bar.update(1)
            bar.set_postfix(ok=tally.ok, failed=tally.failed, dropped=tally.dropped, refresh=False)
            if on_result is not None:
                on_result(result)

        try:
            await self._stream(source, infer, stop, emit)
        finally:
            bar.close()
            if video is not None:
                video.close()
            if detections is not None:
                detections.close()
            if own_infer:
                await infer.close()
        elapsed = time.perf_counter() - start
        return self._summary(tally, elapsed)

    def close(self) -> None:
        """Stop the metrics server."""
        self.metrics.close()

    def __enter__(self) -> "CameraClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- pipeline ----------------------------------------------------------------------

    async def _stream(self, source: Iterable, infer: InferFn, stop: threading.Event,
                      emit: Callable[[FrameResult], None]) -> None:
        """Reader (read, maybe encode, buffer), sender tasks and the in-order consumer."""
        loop = asyncio.get_running_loop()
        self._active_infer = infer
        self._buffer: deque[_Entry] = deque()
        self._free_slots = self.config.max_in_flight
        self._room = asyncio.Event()
        self._outage: asyncio.Future | None = None
        self._probe_task: asyncio.Task | None = None
        self._seen_server = False
        self._outage_count = 0
        self._tasks: set[asyncio.Task] = set()
        pending: asyncio.Queue = asyncio.Queue()  # every _Entry in frame order, None ends
        failed = asyncio.Event()
        consumer = asyncio.create_task(self._deliver(pending, emit, failed))
        frames = iter(source)
        end = object()
        try:
            while not stop.is_set() and not failed.is_set():
                frame = await asyncio.to_thread(next, frames, end)
                if frame is end:
                    break
                read_at = time.perf_counter()
                payload = await self._payload(frame.frame_rgb)
                entry = _Entry(frame.index, frame.timestamp, payload, read_at,
                               1000 * (time.perf_counter() - read_at), loop.create_future())
                await pending.put(entry)
                await self._admit(entry)
        finally:
            await pending.put(None)
            try:
                await consumer
            finally:
                if self._probe_task is not None:
                    self._probe_task.cancel()
                self.metrics.buffered.set(0)

    async def _payload(self, frame_rgb: np.ndarray) -> Any:
        if self.config.mode == "frames":
            return frame_rgb
        packet = await asyncio.to_thread(self.encoder.encode_bytes, frame_rgb)
        if getattr(self.encoder, "guard", None) is not None:
            self.metrics.heads_erased.inc(self.encoder.last_guarded)
        return packet

    def _outage_pending(self) -> bool:
        return self._outage is not None and not self._outage.done()

    def _can_dispatch(self) -> bool:
        return self._free_slots > 0 and not self._outage_pending()

    async def _admit(self, entry: "_Entry") -> None:
        """Put a new frame into the buffer, applying ``when_full`` while it is full."""
        policy = self.config.drop_policy
        while True:
            if len(self._buffer) < self.config.buffer_size or self._can_dispatch():
                self._buffer.append(entry)
                self._pump()
                return
            if policy == "drop-newest" or (policy == "drop-oldest" and not self._buffer):
                self._drop(entry)
                return
            if policy == "drop-oldest":
                self._drop(self._buffer.popleft())
                self._buffer.append(entry)
                self._pump()
                return
            self._room.clear()  # block: wait until a slot frees or the server is back
            await self._room.wait()

    def _drop(self, entry: "_Entry") -> None:
        entry.payload = None
        c = self.config
        entry.result.set_result(FrameResult(
            entry.index, entry.timestamp, "dropped",
            error=f"buffer full ({c.buffer_size} waiting, {c.max_in_flight} in flight): dropped by "
                  f"when_full={c.drop_policy}"))

    def _pump(self) -> None:
        """Send buffered frames, oldest first, while slots are free and the server is not lost."""
        while self._buffer and self._can_dispatch():
            entry = self._buffer.popleft()
            self._free_slots -= 1
            entry.holds_slot = True
            task = asyncio.create_task(self._run(entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.metrics.buffered.set(len(self._buffer))
        self.metrics.in_flight.set(self.config.max_in_flight - self._free_slots)
        if len(self._buffer) < self.config.buffer_size or self._can_dispatch():
            self._room.set()

    async def _run(self, entry: "_Entry") -> None:
        try:
            entry.result.set_result(await self._send(entry))
        except asyncio.CancelledError:
            entry.result.cancel()
            raise
        except Exception as exc:  # handed to the consumer, which raises it in order
            entry.result.set_exception(exc)

    async def _deliver(self, pending: asyncio.Queue, emit: Callable[[FrameResult], None],
                       failed: asyncio.Event) -> None:
        """Deliver results in frame order. If delivery fails (an output cannot be written),
        keep draining so that no request is left behind, then raise the first error."""
        error: BaseException | None = None
        while True:
            entry = await pending.get()
            if entry is None:
                break
            try:
                result = await entry.result
                if error is None:
                    await asyncio.to_thread(emit, result)
            except Exception as exc:
                if error is None:
                    error = exc
                    failed.set()
            finally:
                if entry.holds_slot:
                    entry.holds_slot = False
                    self._free_slots += 1
                    self._pump()
        if error is not None:
            raise error

    async def _send(self, entry: "_Entry") -> FrameResult:
        """One frame's request with retries and outage waits; never raises for a server-side failure."""
        c = self.config
        dispatched = time.perf_counter()
        payload, entry.payload = entry.payload, None  # the frame lives only as long as its request
        size = payload.nbytes if isinstance(payload, np.ndarray) else len(payload)
        result = FrameResult(entry.index, entry.timestamp, "failed", bytes_sent=size,
                             wait_ms=max(0.0, 1000 * (dispatched - entry.read_at) - entry.encode_ms))
        self.metrics.sent.inc()
        retry = 0
        while True:
            if self._outage_pending():
                await asyncio.shield(self._outage)
            result.attempts += 1
            try:
                out = await self._active_infer(payload)
            except ServerUnavailableError as exc:
                result.error = str(exc)
                if isinstance(exc, ServerUnreachableError) and self._seen_server and c.outage_timeout_s > 0:
                    self._server_lost(exc)
                    if await asyncio.shield(self._outage):
                        self.metrics.retries.inc()
                        continue
                    result.error = f"{exc} (still unreachable after waiting {c.outage_timeout_s:g} s)"
                    break
                if retry == c.retries:
                    break
                delay = self.delays[retry]
                retry += 1
                logger.info("frame %d: %s; retry %d/%d in %.2f s", entry.index, exc, retry, c.retries, delay)
                self.metrics.retries.inc()
                await self._sleep(delay)
            except AnoncodecError as exc:
                self._seen_server = True  # it answered, with a refusal
                result.error = str(exc)
                break
            else:
                self._seen_server = True
                result.status, result.error = "ok", None
                result.latency_ms = entry.encode_ms + 1000 * (time.perf_counter() - dispatched)
                result.anonymized, result.boxes_xyxy, result.scores = out.anonymized, out.boxes_xyxy, out.scores
                result.bits = out.bits
                if self._failing:
                    self._failing = False
                    logger.warning("frame %d got through again", entry.index)
                return result
        # warn once per outage, not once per frame of a live stream
        level = logging.INFO if self._failing else logging.WARNING
        self._failing = True
        logger.log(level, "frame %d failed after %d attempt(s): %s", entry.index, result.attempts, result.error)
        return result

    # -- outages -----------------------------------------------------------------------

    def _server_lost(self, exc: Exception) -> None:
        """Start holding frames and probing the server (once per outage)."""
        if self._outage_pending():
            return
        self._outage = asyncio.get_running_loop().create_future()
        self._outage_count += 1
        self.metrics.outages.inc()
        self.metrics.reachable.set(0)
        logger.warning("server unreachable (%s); holding frames (%d in flight, up to %d buffered, when_full=%s) "
                       "for up to %g s until it is back", exc, self.config.max_in_flight - self._free_slots,
                       self.config.buffer_size, self.config.drop_policy, self.config.outage_timeout_s)
        self._probe_task = asyncio.create_task(self._probe(self._outage))

    async def _probe(self, outage: asyncio.Future) -> None:
        """Check readiness with growing waits; resolve ``outage`` with True (back) or False (gave up)."""
        c = self.config
        start, waited = time.monotonic(), 0.0
        delay = max(c.backoff_s, 0.05)
        back = False
        try:
            while True:
                remaining = c.outage_timeout_s - max(waited, time.monotonic() - start)
                if remaining <= 0:
                    break
                step = min(delay, remaining)
                await self._sleep(step)
                waited += step
                if await self._server_ready():
                    back = True
                    break
                delay = min(delay * c.backoff_factor, max(c.backoff_max_s, 0.05))
        finally:
            elapsed = time.monotonic() - start
            self._seen_server = back  # after giving up: fail fast until the server answers again
            if back:
                self.metrics.reachable.set(1)
                logger.warning("server is back after %.1f s; sending %d held frame(s) in order", elapsed,
                               len(self._buffer) + self.config.max_in_flight - self._free_slots)
            else:
                logger.error("server still unreachable after %.1f s; the held frames count as failed", elapsed)
            if not outage.done():
                outage.set_result(back)
            self._pump()

    async def _server_ready(self) -> bool:
        ready = getattr(self._active_infer, "ready", None)
        if ready is None:  # an injected infer function: its next request is the probe
            return True
        try:
            return bool(await ready())
        except Exception as exc:  # a probe must never end the outage with an error
            logger.debug("readiness probe failed: %s", exc)
            return False

    # -- accounting --------------------------------------------------------------------

    def _count(self, result: FrameResult, tally: _Tally) -> None:
        m = self.metrics
        if result.status == "dropped":
            tally.dropped += 1
            m.dropped.inc()
            return
        tally.retries += result.attempts - 1
        tally.bytes_sent.append(result.bytes_sent)
        m.bytes.observe(result.bytes_sent)
        if result.status == "ok":
            tally.ok += 1
            tally.latencies_ms.append(result.latency_ms)
            m.latency.observe(result.latency_ms / 1000)
        else:
            tally.failed += 1
            tally.last_error = result.error
            m.failed.inc()

    def _summary(self, tally: _Tally, elapsed: float) -> CameraSummary:
        lat = np.asarray(tally.latencies_ms, dtype=float)
        p50, p95 = (float(np.percentile(lat, q)) for q in (50, 95)) if lat.size else (None, None)
        return CameraSummary(
            mode=self.config.mode, frames_ok=tally.ok, frames_failed=tally.failed, frames_dropped=tally.dropped,
            latency_p50_ms=p50, latency_p95_ms=p95,
            mean_bytes_per_frame=float(np.mean(tally.bytes_sent)) if tally.bytes_sent else None,
            retries=tally.retries, elapsed_s=elapsed, fps=(tally.ok / elapsed) if elapsed > 0 else 0.0,
            last_error=tally.last_error, outages=self._outage_count,
        )
