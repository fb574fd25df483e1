"""The camera's video mode: frames -> keyframes and deltas -> ``analyze_stream``, in order.

Numpy, onnxruntime (through :class:`~anoncodec.edge.encoder.EdgeEncoder`) and, for
:class:`StreamSender`, ``tritonclient.grpc``; no PyTorch. One camera is one Triton
sequence: its correlation ID on every request, the START flag on the first one. After any
failure (a refused delta, a timeout, a server restart, Triton's idle timeout) the sender
starts a new sequence and sends the same frame again as a keyframe, so the server never
decodes a delta against a state it does not have.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from anoncodec.contract import ANALYZE_STREAM, ANONYMIZED, BOXES, SCORES
from anoncodec.edge.encoder import EdgeEncoder
from anoncodec.edge.guard import suppress_latent
from anoncodec.edge.request import request_inputs, requested_outputs
from anoncodec.edge.transport import triton_error
from anoncodec.errors import ConfigError, RequestRejectedError, ServerUnavailableError, require
from anoncodec.packet import Packet, pack
from anoncodec.replenish import ReplenishConfig, ReplenishEncoder

__all__ = ["SequenceEncoder", "StreamResult", "StreamSender", "StreamSummary", "grow_cells", "stream_frames"]

logger = logging.getLogger(__name__)


def grow_cells(mask: np.ndarray, cells: int = 1) -> np.ndarray:
    """``mask`` (bool ``[h, w]``) grown by ``cells`` in every direction (8-neighbourhood)."""
    out = np.asarray(mask, dtype=bool)
    for _ in range(cells):
        padded = np.pad(out, 1)
        h, w = out.shape
        out = np.zeros_like(out)
        for dy in range(3):
            for dx in range(3):
                out |= padded[dy:dy + h, dx:dx + w]
    return out


class SequenceEncoder:
    """Frames -> version-2 packets of one sequence, the guard applied to every frame.

    The guard's erased cells are *held*: a cell erased in one of the last
    ``guard_hold`` frames (grown by ``hold_grow`` cells) stays erased, so a head the face
    detector misses in a single frame does not slip through.

    Args:
        encoder: the camera's :class:`~anoncodec.edge.encoder.EdgeEncoder` (with its guard).
        config: keyframe interval and change threshold.
        guard_hold: frames an erased cell stays erased after its head was last found
            (0: only the current frame's heads).
        hold_grow: cells the held cells grow by, for heads that move (each costs fidelity
            around every moving head: measured on the held-out clip, 1 cell with a hold of
            2 frames took 2.5 dB off PSNR outside heads).
    """

    def __init__(self, encoder: EdgeEncoder, config: ReplenishConfig = ReplenishConfig(),
                 guard_hold: int = 1, hold_grow: int = 0) -> None:
        if not (isinstance(guard_hold, int) and guard_hold >= 0):
            raise ConfigError(f"guard_hold={guard_hold!r}; expected an integer >= 0")
        if not (isinstance(hold_grow, int) and hold_grow >= 0):
            raise ConfigError(f"hold_grow={hold_grow!r}; expected an integer >= 0")
        self.encoder, self.hold_grow = encoder, hold_grow
        self.replenish = ReplenishEncoder(encoder.tables, config)
        self._recent: deque[np.ndarray] = deque(maxlen=guard_hold)

    @property
    def sequence_id(self) -> int:
        return self.replenish.sequence_id

    def restart(self) -> None:
        """A new sequence: the next packet is a keyframe with a new sequence id."""
        self.replenish.restart()

    def request_keyframe(self) -> None:
        self.replenish.request_keyframe()

    def encode(self, frame_rgb: np.ndarray) -> Packet:
        """The next frame's packet (a keyframe or a delta)."""
        y, mask = self.encoder.guarded_latent(frame_rgb)
        forced = mask
        if mask is not None and self._recent.maxlen:
            held = np.zeros_like(mask)
            for previous in self._recent:
                if previous.shape == mask.shape:
                    held |= previous
            held = (grow_cells(held, self.hold_grow) if self.hold_grow else held) & ~mask
            self._recent.append(mask)
            if held.any():
                y = suppress_latent(y, held, self.encoder.tables.medians)
                forced = mask | held
        h, w = frame_rgb.shape[:2]
        return self.replenish.encode(y, h, w, forced=forced)


@dataclass
class StreamResult:
    """One frame's answer from ``analyze_stream``.

    Attributes:
        anonymized: decoded frame, uint8 ``[H, W, 3]``.
        boxes_xyxy: person boxes, float32 ``[N, 4]``.
        scores: their scores.
        frame_type: ``"key"`` or ``"delta"``: what was sent (after any resync).
        bytes_sent: the packet's size.
        resyncs: sequences restarted to get this frame through.
    """

    anonymized: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    frame_type: str
    bytes_sent: int
    resyncs: int = 0


class StreamSender:
    """Send one camera's frames to ``analyze_stream`` in order (synchronous gRPC).

    Args:
        url: the server's gRPC address ``host:port``.
        encoder: the camera's :class:`SequenceEncoder`.
        camera_id: the correlation ID of this camera's sequences (unique per camera, > 0).
        timeout_s: deadline of one request.
        retries: resyncs tried for one frame before giving up on it.
        retry_delay_s: wait before a resync after the server was unreachable.
    """

    def __init__(self, url: str, encoder: SequenceEncoder, camera_id: int, timeout_s: float = 30.0,
                 retries: int = 3, retry_delay_s: float = 1.0) -> None:
        if not (isinstance(camera_id, int) and 0 < camera_id < 1 << 64):
            raise ConfigError(f"camera_id={camera_id!r}; expected an integer in 1..2**64-1 (the correlation ID)")
        self.url, self.encoder, self.camera_id = url, encoder, camera_id
        self.timeout_s, self.retries, self.retry_delay_s = timeout_s, retries, retry_delay_s
        self._grpc = require("tritonclient.grpc", "serve")
        self._utils = require("tritonclient.utils", "serve")
        self._client = self._grpc.InferenceServerClient(url)
        self._start = True  # the next request opens a sequence

    def _infer(self, data: bytes, start: bool, end: bool = False):
        inputs = request_inputs(ANALYZE_STREAM, data)
        try:
            return self._client.infer(ANALYZE_STREAM.name, inputs, outputs=requested_outputs(ANALYZE_STREAM),
                                      sequence_id=self.camera_id, sequence_start=start, sequence_end=end,
                                      client_timeout=self.timeout_s)
        except self._utils.InferenceServerException as exc:
            raise triton_error(exc, ANALYZE_STREAM.name, self.url) from None

    def send(self, frame_rgb: np.ndarray, end: bool = False) -> StreamResult:
        """Encode and send the next frame; resync (new sequence, keyframe) after any failure.

        Args:
            frame_rgb: uint8 ``[H, W, 3]`` RGB.
            end: the sequence's last frame (Triton's END flag): the server frees the
                camera's state, and the next frame opens a new sequence. Close every
                sequence this way before the server shuts down, or it waits for them.

        Raises:
            ServerUnavailableError, RequestRejectedError: the frame did not get through
                after ``retries`` resyncs (the next frame starts a new sequence).
        """
        packet = self.encoder.encode(frame_rgb)
        resyncs = 0
        while True:
            data = pack(packet)
            try:
                result = self._infer(data, self._start, end)
            except (ServerUnavailableError, RequestRejectedError) as exc:
                # a refused delta ([packet:reference]), Triton's "must specify the START flag"
                # after an idle timeout or a restart, or no answer at all: start over from a keyframe
                self._start = True
                self.encoder.restart()
                if resyncs == self.retries:
                    raise
                resyncs += 1
                logger.warning("camera %d: %s; new sequence, resending frame as a keyframe", self.camera_id, exc)
                if isinstance(exc, ServerUnavailableError):
                    time.sleep(self.retry_delay_s)
                packet = self.encoder.encode(frame_rgb)
                continue
            self._start = end
            if end:
                self.encoder.restart()
            return StreamResult(result.as_numpy(ANONYMIZED.name), result.as_numpy(BOXES.name),
                                result.as_numpy(SCORES.name), packet.sequence.frame_type, len(data), resyncs)

    def close(self) -> None:
        self._client.close()


@dataclass
class StreamSummary:
    """What one ``camera --mode stream`` run sent and got back."""

    frames_ok: int = 0
    frames_failed: int = 0
    keyframes: int = 0
    deltas: int = 0
    resyncs: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    last_error: str | None = None

    def kbit_per_s(self, fps: float) -> float:
        """Stream rate of the frames sent, at ``fps`` frames per second."""
        frames = self.frames_ok + self.frames_failed
        return 8 * self.bytes_sent * fps / 1000 / frames if frames else 0.0

    def to_dict(self) -> dict:
        return {"mode": "stream", **{k: getattr(self, k) for k in self.__dataclass_fields__}}


def stream_frames(frames, sender: StreamSender, on_result=None, stop=None) -> StreamSummary:
    """Send every frame of ``frames`` (items with ``.index`` and ``.frame_rgb``) in order;
    the last one closes the sequence. A frame that does not get through is counted and the
    next one starts a new sequence."""
    summary = StreamSummary()
    start = time.perf_counter()
    iterator = iter(frames)
    current = next(iterator, None)
    while current is not None and not (stop is not None and stop.is_set()):
        following = next(iterator, None)
        last = following is None or (stop is not None and stop.is_set())
        sent = time.perf_counter()
        try:
            result = sender.send(current.frame_rgb, end=last)
        except (ServerUnavailableError, RequestRejectedError) as exc:
            summary.frames_failed += 1
            summary.last_error = str(exc)
            result = None
        else:
            summary.frames_ok += 1
            summary.resyncs += result.resyncs
            summary.bytes_sent += result.bytes_sent
            summary.keyframes += result.frame_type == "key"
            summary.deltas += result.frame_type == "delta"
        if on_result is not None:
            on_result(current, result, 1000 * (time.perf_counter() - sent))
        current = following
    summary.seconds = time.perf_counter() - start
    return summary
