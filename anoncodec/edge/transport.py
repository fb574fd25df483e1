"""Transport: one served ensemble called over async gRPC, and the inference-function contract
the camera client schedules (:data:`InferFn`, :class:`InferenceResult`).

Numpy, anoncodec's contract, errors, ``edge.request`` and ``edge.client_config``;
``tritonclient`` only when a :class:`TritonInference` is created. Turns gRPC failures into
anoncodec errors that say what the client should do: retry
(:class:`~anoncodec.errors.ServerUnavailableError`), wait for the server
(:class:`ServerUnreachableError`) or give up (:class:`~anoncodec.errors.RequestRejectedError`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoncodec.contract import ANONYMIZED, BITS, BOXES, SCORES
from anoncodec.contract import MODES as CONTRACT_MODES
from anoncodec.edge.client_config import RETRYABLE_STATUS
from anoncodec.edge.request import request_inputs, requested_outputs
from anoncodec.errors import (
    AnoncodecError,
    RequestRejectedError,
    ServerUnavailableError,
    require,
)

__all__ = ["InferenceResult", "ServerUnreachableError", "InferFn", "TritonInference", "triton_error"]


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


def triton_error(exc: Any, model: str, url: str) -> AnoncodecError:
    """The anoncodec error for a ``tritonclient`` ``InferenceServerException`` from ``model`` at
    ``url``: :class:`ServerUnreachableError` (no answer), ``ServerUnavailableError`` (another
    retryable status) or ``RequestRejectedError`` (refused; a missing admin key too)."""
    status = str(exc.status() or "").rsplit(".", 1)[-1]
    message = f"{model} at {url}: {status or 'error'}: {exc.message()}"
    if "restricted" in str(exc.message()):  # Triton answers UNAVAILABLE for a missing key
        return RequestRejectedError(f"{message} (this server requires a key for that protocol)")
    if status == "UNAVAILABLE":
        return ServerUnreachableError(message)
    if status in RETRYABLE_STATUS:
        return ServerUnavailableError(message)
    return RequestRejectedError(message)


#: ``await infer(payload)``: payload is the uint8 frame (frames) or packet bytes (packets).
#: Raise :class:`ServerUnreachableError` when the server cannot be reached,
#: :class:`~anoncodec.errors.ServerUnavailableError` for another retryable failure and
#: another :class:`~anoncodec.errors.AnoncodecError` for a permanent one. An optional ``await infer.ready()``
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
        self._spec = CONTRACT_MODES[mode]
        self.model = self._spec.name
        self._aio = require("tritonclient.grpc.aio", "serve")
        self._grpc = require("tritonclient.grpc", "serve")
        self._utils = require("tritonclient.utils", "serve")
        self._client = None
        self._outputs = requested_outputs(self._spec)
        self._output_names = self._spec.output_names

    def _input(self, payload: Any):
        return request_inputs(self._spec, payload)[0]

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
            raise triton_error(exc, self.model, self.url) from None
        bits = result.as_numpy(BITS.name) if BITS.name in self._output_names else None
        return InferenceResult(result.as_numpy(ANONYMIZED.name), result.as_numpy(BOXES.name),
                               result.as_numpy(SCORES.name), None if bits is None else int(bits[0]))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
