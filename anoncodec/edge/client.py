"""The camera client: stream frames to the Triton ensembles over async gRPC.

This module is the scheduling only (buffer, in-flight slots, retries, outages, delivery
order); settings, transport, metrics and outputs live in the modules listed in
:mod:`anoncodec.edge`, which never import this one. May import numpy and anoncodec's errors
and edge modules (so, when used, OpenCV, tritonclient, prometheus_client and tqdm); never
torch, codec or serving (a unit test checks that importing it does not load torch).

Two modes (docs/ARCHITECTURE.md)::

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
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoncodec.contract import SEQUENCE_MODES
from anoncodec.edge.client_config import MODES, ClientConfig, backoff_schedule
from anoncodec.edge.encoder import EdgeEncoder, camera_encoder, find_encoder_files
from anoncodec.edge.metrics import CameraMetrics
from anoncodec.edge.outage import OutageWatch
from anoncodec.edge.request import payload_size
from anoncodec.edge.results import CameraSummary, FrameResult, RunTally
from anoncodec.edge.sinks import ResultSinks, draw_detections
from anoncodec.edge.transport import (
    InferenceResult,
    InferFn,
    ServerUnreachableError,
    TritonInference,
)
from anoncodec.errors import (
    AnoncodecError,
    ConfigError,
    RequestRejectedError,
    ServerUnavailableError,
)

# Besides CameraClient, these names are re-exported from their modules, so that
# ``from anoncodec.edge.client import X`` keeps working for each of them.
__all__ = ["MODES", "ClientConfig", "InferenceResult", "FrameResult", "CameraSummary", "RequestRejectedError",
           "ServerUnreachableError", "TritonInference", "CameraMetrics", "CameraClient", "backoff_schedule",
           "find_encoder_files", "draw_detections"]

logger = logging.getLogger(__name__)


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
                 encoder: EdgeEncoder | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self._infer = infer
        self._sleep = sleep
        self.encoder = encoder
        if config.mode in SEQUENCE_MODES:
            raise ConfigError(f"mode {config.mode!r} sends one sequence in order: use "
                              "anoncodec.edge.sequence.StreamSender (anoncodec camera --mode stream), not CameraClient")
        if config.mode == "packets" and encoder is None:
            self.encoder = camera_encoder(config)
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
        c = self.config
        stop = stop or threading.Event()
        tally = RunTally()
        length = getattr(source, "length", None)
        fps = getattr(source, "native_fps", None) or getattr(source, "fps", None) or 10.0
        sinks = ResultSinks(c.output_video, c.detections, fps, progress=c.progress, total=length,
                            desc=f"camera ({c.mode})")
        own_infer = self._infer is None
        infer = self._infer or TritonInference(c.url, c.mode, c.request_timeout_s, tls=c.tls, tls_ca=c.tls_ca,
                                               tls_cert=c.tls_cert, tls_key=c.tls_key,
                                               reconnect_s=(c.backoff_s, c.backoff_max_s))
        start = time.perf_counter()

        def emit(result: FrameResult) -> None:
            tally.add(result)
            self.metrics.record(result)
            sinks.write(result, tally)
            if on_result is not None:
                on_result(result)

        try:
            await self._stream(source, infer, stop, emit)
        finally:
            sinks.close()
            if own_infer:
                await infer.close()
        elapsed = time.perf_counter() - start
        return tally.summary(self.config.mode, elapsed, outages=self._outage.count)

    def close(self) -> None:
        """Stop the metrics server."""
        self.metrics.close()

    def __enter__(self) -> CameraClient:
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
        self._outage = OutageWatch(self.config, self.metrics, infer, self._sleep, self._outage_ended)
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
                self._outage.cancel()
                self.metrics.buffered.set(0)

    async def _payload(self, frame_rgb: np.ndarray) -> Any:
        if self.config.mode == "frames":
            return frame_rgb
        packet = await asyncio.to_thread(self.encoder.encode_bytes, frame_rgb)
        if getattr(self.encoder, "guard", None) is not None:
            self.metrics.heads_erased.inc(self.encoder.last_guarded)
        return packet

    def _can_dispatch(self) -> bool:
        return self._free_slots > 0 and not self._outage.pending

    async def _admit(self, entry: _Entry) -> None:
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

    def _drop(self, entry: _Entry) -> None:
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

    async def _run(self, entry: _Entry) -> None:
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

    async def _send(self, entry: _Entry) -> FrameResult:
        """One frame's request with retries and outage waits; never raises for a server-side failure."""
        c = self.config
        dispatched = time.perf_counter()
        payload, entry.payload = entry.payload, None  # the frame lives only as long as its request
        size = payload_size(payload)
        result = FrameResult(entry.index, entry.timestamp, "failed", bytes_sent=size,
                             wait_ms=max(0.0, 1000 * (dispatched - entry.read_at) - entry.encode_ms))
        self.metrics.sent.inc()
        retry = 0
        while True:
            if self._outage.pending:
                await self._outage.wait()
            result.attempts += 1
            try:
                out = await self._active_infer(payload)
            except ServerUnavailableError as exc:
                result.error = str(exc)
                if isinstance(exc, ServerUnreachableError) and self._outage.seen_server and c.outage_timeout_s > 0:
                    self._server_lost(exc)
                    if await self._outage.wait():
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
                self._outage.seen_server = True  # it answered, with a refusal
                result.error = str(exc)
                break
            else:
                self._outage.seen_server = True
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
        if self._outage.start():
            logger.warning("server unreachable (%s); holding frames (%d in flight, up to %d buffered, when_full=%s) "
                           "for up to %g s until it is back", exc, self.config.max_in_flight - self._free_slots,
                           self.config.buffer_size, self.config.drop_policy, self.config.outage_timeout_s)

    def _outage_ended(self, back: bool, elapsed: float) -> None:
        """Send the held frames in order: to the server that is back, or, after giving up, to fail
        after their own retries (the client no longer waits until the server answers again)."""
        if back:
            logger.warning("server is back after %.1f s; sending %d held frame(s) in order", elapsed,
                           len(self._buffer) + self.config.max_in_flight - self._free_slots)
        else:
            logger.error("server still unreachable after %.1f s; the held frames count as failed", elapsed)
        self._pump()
