"""The camera client's settings: :class:`ClientConfig`, its modes and ``when_full`` policies,
the gRPC codes worth a retry and the waits between retries.

Standard library, anoncodec's contract and errors, and the guard's settings
(:class:`~anoncodec.edge.guard.GuardConfig`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anoncodec.contract import DEFAULT_MODE, DEFAULT_REPOSITORY
from anoncodec.contract import MODES as CONTRACT_MODES
from anoncodec.edge.guard import GuardConfig
from anoncodec.errors import ConfigError

__all__ = ["MODES", "ENCODING_MODES", "WHEN_FULL", "RETRYABLE_STATUS", "ClientConfig", "backoff_schedule",
           "guard_applies"]

#: mode -> ensemble it calls (anoncodec.contract.MODES)
MODES = {mode: spec.name for mode, spec in CONTRACT_MODES.items()}
#: ``when_full`` policies; ``"drop"`` is the older name of ``"drop-newest"``
WHEN_FULL = ("block", "drop-newest", "drop-oldest", "drop")
# gRPC codes after which the same request may succeed later
RETRYABLE_STATUS = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")


#: the modes that encode on the camera (the guard applies to them)
ENCODING_MODES = ("packets", "stream")


def guard_applies(mode: str, guard: bool | None) -> bool:
    """``guard`` as given, else on exactly when packets leave the camera (packets and stream modes)."""
    return mode in ENCODING_MODES if guard is None else bool(guard)


@dataclass(frozen=True)
class ClientConfig:
    """Settings of :class:`~anoncodec.edge.client.CameraClient`; the ``anoncodec camera`` flags map onto these fields.

    Attributes:
        url: Triton gRPC address ``host:port``.
        mode: ``"frames"`` (send FRAME to ``anonymize_frame``), ``"packets"`` (encode
            here, send PACKET to ``analyze_bitstream``) or ``"stream"`` (encode here as
            keyframes and deltas of one sequence, sent in order to ``analyze_stream``).
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
            None (the default): on in packets mode, off in frames mode (:attr:`guard_on`).
        guard_settings: threshold, margin, upscale and max side of that guard.
    """

    url: str = "localhost:8001"
    mode: str = DEFAULT_MODE
    export_dir: str | None = DEFAULT_REPOSITORY
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
    guard: bool | None = None
    guard_settings: GuardConfig = field(default_factory=GuardConfig)

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
        if self.guard and self.mode not in ENCODING_MODES:
            raise ConfigError("guard=True needs mode='packets' or 'stream': the guaranteed mode erases heads in the "
                              "camera's own encoder (--mode packets --guard)")

    @property
    def guard_on(self) -> bool:
        """Whether packets are guarded (:func:`guard_applies`)."""
        return guard_applies(self.mode, self.guard)

    @property
    def drop_policy(self) -> str:
        """``when_full`` with the alias resolved: ``"block"``, ``"drop-newest"`` or ``"drop-oldest"``."""
        return "drop-newest" if self.when_full == "drop" else self.when_full

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClientConfig:
        return cls(**d)


def backoff_schedule(retries: int, initial_s: float, factor: float = 2.0, maximum_s: float = 8.0) -> list[float]:
    """Waits before each retry: ``initial_s * factor**k`` capped at ``maximum_s``, k = 0..retries-1.

    Example:
        >>> backoff_schedule(4, 0.5, 2.0, 3.0)
        [0.5, 1.0, 2.0, 3.0]
    """
    return [min(initial_s * factor**k, maximum_s) for k in range(retries)]
