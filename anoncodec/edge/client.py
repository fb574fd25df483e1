"""The camera client: stream frames to the Triton ensembles over async gRPC.

May import numpy, OpenCV, tritonclient, prometheus_client, tqdm and anoncodec's errors,
packet and edge modules; never torch, codec or serving (a unit test checks that importing
it does not load torch).

Two modes (DESIGN.md sections 2 and 4)::

    frames:   frame_rgb ==FRAME==> anonymize_frame   -> ANONYMIZED, BOXES, SCORES, BITS
    packets:  frame_rgb -> EdgeEncoder -> packet ==PACKET==> analyze_bitstream
                                                     -> ANONYMIZED, BOXES, SCORES

Pipeline: the source is read (and, in packets mode, encoded) in order; each frame takes
one of ``max_in_flight`` slots, its request runs concurrently with the others, and the
results are delivered strictly in frame order to the outputs (annotated video of the
*anonymized* frames, JSON lines of detections, Prometheus metrics, progress bar). A slot
is freed when its frame has been delivered, so at most ``max_in_flight`` frames (and
their results) are held at once. When every slot is taken, ``when_full="block"`` waits and
``when_full="drop"`` skips the new frame (counted as dropped).

A request that fails because the server is unreachable, overloaded or too slow
(gRPC ``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ``RESOURCE_EXHAUSTED``, ``ABORTED``) is
retried after exponentially growing waits (:func:`backoff_schedule`); after ``retries``
retries, or at once for a rejected request (``INVALID_ARGUMENT``, unknown model), the
frame counts as failed. Raw frames are never written anywhere: failed and dropped frames
only get a line in the detections file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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
    "TritonInference",
    "CameraMetrics",
    "CameraClient",
    "backoff_schedule",
    "find_encoder_files",
    "draw_detections",
]

logger = logging.getLogger(__name__)

#: mode -> ensemble it calls
MODES = {"frames": "anonymize_frame", "packets": "analyze_bitstream"}
WHEN_FULL = ("block", "drop")
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
        when_full: ``"block"`` (wait for a slot) or ``"drop"`` (skip the frame).
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


#: ``await infer(payload)``: payload is the uint8 frame (frames) or packet bytes (packets).
#: Raise :class:`ServerUnavailableError` for a retryable failure, another
#: :class:`AnoncodecError` for a permanent one.
InferFn = Callable[[Any], Awaitable[InferenceResult]]


class TritonInference:
    """Calls one ensemble with ``tritonclient.grpc.aio``; create and use inside one event loop.

    Args:
        url: gRPC address ``host:port``.
        mode: ``"frames"`` or ``"packets"``.
        timeout_s: deadline of one request.
    """

    def __init__(self, url: str, mode: str, timeout_s: float = 60.0) -> None:
        self.url, self.mode, self.timeout_s = url, mode, timeout_s
        self.model = MODES[mode]
        self._aio = require("tritonclient.grpc.aio", "serve")
        self._grpc = require("tritonclient.grpc", "serve")
        self._utils = require("tritonclient.utils", "serve")
        self._client = None
        outputs = ["ANONYMIZED", "BOXES", "SCORES"] + (["BITS"] if mode == "frames" else [])
        self._outputs = [self._grpc.InferRequestedOutput(name) for name in outputs]

    def _input(self, payload: Any):
        if self.mode == "frames":
            tensor = self._grpc.InferInput("FRAME", list(payload.shape), "UINT8")
            tensor.set_data_from_numpy(payload)
        else:
            tensor = self._grpc.InferInput("PACKET", [1], "BYTES")
            tensor.set_data_from_numpy(np.array([payload], dtype=object))
        return tensor

    async def __call__(self, payload: Any) -> InferenceResult:
        if self._client is None:
            self._client = self._aio.InferenceServerClient(self.url)
        try:
            result = await self._client.infer(self.model, [self._input(payload)], outputs=self._outputs,
                                              client_timeout=self.timeout_s)
        except self._utils.InferenceServerException as exc:
            status = str(exc.status() or "").rsplit(".", 1)[-1]
            message = f"{self.model} at {self.url}: {status or 'error'}: {exc.message()}"
            if status in RETRYABLE_STATUS:
                raise ServerUnavailableError(message) from None
            raise RequestRejectedError(message) from None
        bits = result.as_numpy("BITS") if self.mode == "frames" else None
        return InferenceResult(result.as_numpy("ANONYMIZED"), result.as_numpy("BOXES"),
                               result.as_numpy("SCORES"), None if bits is None else int(bits[0]))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


@dataclass
class FrameResult:
    """The fate of one frame, delivered in frame order.

    Attributes:
        index, timestamp: from the source.
        status: ``"ok"``, ``"failed"`` or ``"dropped"``.
        bytes_sent: request payload size (raw frame or packet), 0 when dropped.
        attempts: requests made (1 + retries used).
        latency_ms: end to end, from the frame taking its in-flight slot to the response:
            encoding (packets mode), transfer, server, retries; None unless ok.
        wait_ms: from the frame being read to it getting a slot (``when_full="block"``
            only; replaying a file faster than the server keeps up makes this grow).
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
                                    "Frames skipped because every in-flight slot was taken", **kw).labels(mode)
        self.retries = prom.Counter("anoncodec_camera_retries", "Requests retried after a retryable error",
                                    **kw).labels(mode)
        self.in_flight = prom.Gauge("anoncodec_camera_frames_in_flight", "Frames sent and not yet delivered",
                                    **kw).labels(mode)
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
            self.encoder = EdgeEncoder(*find_encoder_files(config.export_dir), threads=config.encoder_threads)
        self.delays = backoff_schedule(config.retries, config.backoff_s, config.backoff_factor,
                                       config.backoff_max_s)
        self.metrics = CameraMetrics(config.mode)
        self._failing = False
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
        infer = self._infer or TritonInference(c.url, c.mode, c.request_timeout_s)
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
        """Producer (read, maybe encode, send) and in-order consumer (deliver, free the slot)."""
        slots = asyncio.Semaphore(self.config.max_in_flight)
        pending: asyncio.Queue = asyncio.Queue()  # (future FrameResult, holds a slot), None ends
        failed = asyncio.Event()
        consumer = asyncio.create_task(self._deliver(pending, slots, emit, failed))
        frames = iter(source)
        end = object()
        try:
            while not stop.is_set() and not failed.is_set():
                frame = await asyncio.to_thread(next, frames, end)
                if frame is end:
                    break
                read_at = time.perf_counter()
                if self.config.when_full == "drop" and slots.locked():
                    dropped = asyncio.get_running_loop().create_future()
                    dropped.set_result(FrameResult(frame.index, frame.timestamp, "dropped"))
                    await pending.put((dropped, False))
                    continue
                await slots.acquire()
                if failed.is_set():
                    slots.release()
                    break
                self.metrics.in_flight.inc()
                started = time.perf_counter()
                try:
                    payload = await self._payload(frame.frame_rgb)
                except BaseException:
                    slots.release()
                    self.metrics.in_flight.dec()
                    raise
                task = asyncio.create_task(self._send(frame, payload, started, 1000 * (started - read_at), infer))
                await pending.put((task, True))
        finally:
            await pending.put(None)
            await consumer

    async def _payload(self, frame_rgb: np.ndarray) -> Any:
        if self.config.mode == "frames":
            return frame_rgb
        return await asyncio.to_thread(self.encoder.encode_bytes, frame_rgb)

    async def _deliver(self, pending: asyncio.Queue, slots: asyncio.Semaphore,
                       emit: Callable[[FrameResult], None], failed: asyncio.Event) -> None:
        """Deliver results in frame order. If delivery fails (an output cannot be written),
        keep draining so that no request is left behind, then raise the first error."""
        error: BaseException | None = None
        while True:
            item = await pending.get()
            if item is None:
                break
            future, holds_slot = item
            try:
                result = await future
                if error is None:
                    await asyncio.to_thread(emit, result)
            except Exception as exc:
                if error is None:
                    error = exc
                    failed.set()
            finally:
                if holds_slot:
                    slots.release()
                    self.metrics.in_flight.dec()
        if error is not None:
            raise error

    async def _send(self, frame, payload: Any, started: float, wait_ms: float, infer: InferFn) -> FrameResult:
        """One frame's request with retries; never raises for a server-side failure."""
        size = payload.nbytes if isinstance(payload, np.ndarray) else len(payload)
        result = FrameResult(frame.index, frame.timestamp, "failed", bytes_sent=size, wait_ms=wait_ms)
        self.metrics.sent.inc()
        for attempt in range(self.config.retries + 1):
            result.attempts = attempt + 1
            try:
                out = await infer(payload)
            except ServerUnavailableError as exc:
                result.error = str(exc)
                if attempt == self.config.retries:
                    break
                delay = self.delays[attempt]
                logger.info("frame %d: %s; retry %d/%d in %.2f s", frame.index, exc, attempt + 1,
                            self.config.retries, delay)
                self.metrics.retries.inc()
                await self._sleep(delay)
            except AnoncodecError as exc:
                result.error = str(exc)
                break
            else:
                result.status, result.error = "ok", None
                result.latency_ms = 1000 * (time.perf_counter() - started)
                result.anonymized, result.boxes_xyxy, result.scores = out.anonymized, out.boxes_xyxy, out.scores
                result.bits = out.bits
                if self._failing:
                    self._failing = False
                    logger.warning("frame %d got through again", frame.index)
                return result
        # warn once per outage, not once per frame of a live stream
        level = logging.INFO if self._failing else logging.WARNING
        self._failing = True
        logger.log(level, "frame %d failed after %d attempt(s): %s", frame.index, result.attempts, result.error)
        return result

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
            last_error=tally.last_error,
        )
