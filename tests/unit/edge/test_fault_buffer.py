"""The camera client's fault buffer without a server: an injected server that goes away.

Covers holding frames while a server that answered before is unreachable (in-flight ones
wait, new ones fill the bounded buffer), the three ``when_full`` policies during an
outage, exactly-once delivery when a retried request had reached the server, giving up
after ``outage_timeout_s``, no waiting for a server that never answered, the metrics and
the TLS/buffer settings.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("prometheus_client", reason="prometheus-client (extra `serve`) is not installed")

from anoncodec.edge.client import CameraClient  # noqa: E402
from anoncodec.edge.client_config import ClientConfig  # noqa: E402
from anoncodec.edge.sources import Frame  # noqa: E402
from anoncodec.edge.transport import InferenceResult, ServerUnreachableError  # noqa: E402
from anoncodec.errors import ConfigError  # noqa: E402

H, W = 8, 8


def _frame(i: int) -> Frame:
    return Frame(i, i / 10, np.full((H, W, 3), i, np.uint8))


class FlakyServer:
    """An async inference function with a power switch.

    While ``down`` is set, every call (and ``ready()``) fails as unreachable. Indexes in
    ``lose_answer`` are processed once and then answered with a connection error, as
    when the server dies between finishing a request and sending its answer.
    """

    def __init__(self, lose_answer=()):
        self.down = threading.Event()
        self.lose_answer = set(lose_answer)
        self.processed: list[int] = []
        self.calls = 0

    async def __call__(self, frame_rgb):
        self.calls += 1
        i = int(frame_rgb[0, 0, 0])
        await asyncio.sleep(0.005)
        if self.down.is_set():
            raise ServerUnreachableError(f"fake: UNAVAILABLE (frame {i})")
        self.processed.append(i)
        if i in self.lose_answer:
            self.lose_answer.discard(i)
            raise ServerUnreachableError(f"fake: connection reset after frame {i} was processed")
        return InferenceResult(255 - frame_rgb, np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    async def ready(self) -> bool:
        return not self.down.is_set()


def _metric(client, name: str) -> float:
    return client.metrics.registry.get_sample_value(f"anoncodec_camera_{name}", {"mode": client.config.mode})


def _run(config, server, frames, **kw):
    delivered = []
    with CameraClient(config, infer=server, **kw) as client:
        summary = client.run(frames, on_result=delivered.append)
        metrics = {name: _metric(client, name) for name in ("frames_dropped_total", "server_outages_total",
                                                              "frames_buffered")}
    return summary, delivered, metrics


def _outage_source(server, delivered_event, down_after=3, outage_frames=8, total=15, down_for=1.0):
    """Frames 0..down_after while up; then the server goes down for ``down_for`` s while
    ``outage_frames`` more frames are read; the rest after the outage frames are delivered."""

    def frames():
        for i in range(down_after + 1):
            yield _frame(i)
        delivered_event[down_after].wait(10)
        time.sleep(0.1)  # let frame `down_after` free its slot
        server.down.set()
        threading.Timer(down_for, server.down.clear).start()
        last = down_after + outage_frames
        for i in range(down_after + 1, last + 1):
            yield _frame(i)
        delivered_event[last].wait(30)
        for i in range(last + 1, total):
            yield _frame(i)

    return frames()


@pytest.mark.parametrize("policy, dropped", [("block", []), ("drop-newest", [9, 10, 11]),
                                             ("drop-oldest", [5, 6, 7])])
def test_frames_wait_for_a_restarted_server_and_come_back_once_in_order(tmp_path, policy, dropped):
    # frame 4 holds the only slot and waits; 5..11 meet a buffer of 4 while the server is down
    server = FlakyServer()
    events = [threading.Event() for _ in range(15)]
    config = ClientConfig(mode="frames", max_in_flight=1, buffer_size=4, when_full=policy, backoff_s=0.02,
                          backoff_max_s=0.05,
                          outage_timeout_s=20, retries=0, detections=str(tmp_path / "d.jsonl"))
    delivered = []

    def on_result(result):
        delivered.append(result)
        events[result.index].set()

    with CameraClient(config, infer=server) as client:
        summary = client.run(_outage_source(server, events), on_result=on_result)
        dropped_metric = _metric(client, "frames_dropped_total")
        buffered = _metric(client, "frames_buffered")
        reachable = _metric(client, "server_reachable")
    lines = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(15))  # each frame once, in order
    assert [r.index for r in delivered if r.status == "dropped"] == dropped
    assert all(r.status == "ok" for r in delivered if r.index not in dropped)
    assert delivered[4].attempts >= 2  # its request failed, it waited, it was sent again
    assert sorted(server.processed) == [i for i in range(15) if i not in dropped]  # nothing sent twice
    assert (summary.frames_ok, summary.frames_failed, summary.frames_dropped) == (15 - len(dropped), 0, len(dropped))
    assert summary.outages == 1 and dropped_metric == len(dropped) and buffered == 0 and reachable == 1
    assert all("buffer full" in line["error"] for line in lines if line["status"] == "dropped")


def test_a_lost_answer_is_resent_but_the_frame_is_delivered_once(tmp_path):
    server = FlakyServer(lose_answer={3})
    config = ClientConfig(mode="frames", max_in_flight=2, backoff_s=0.01, detections=str(tmp_path / "d.jsonl"))
    summary, delivered, metrics = _run(config, server, [_frame(i) for i in range(6)])
    assert server.processed.count(3) == 2  # the server did the work twice ...
    assert [r.index for r in delivered] == list(range(6))  # ... the camera delivers it once
    assert [json.loads(line)["frame"] for line in (tmp_path / "d.jsonl").read_text().splitlines()] == list(range(6))
    assert summary.frames_ok == 6 and delivered[3].attempts == 2 and summary.outages == 1


def test_held_frames_fail_after_the_outage_timeout_then_the_client_fails_fast():
    server = FlakyServer()

    def frames():
        yield _frame(0)
        time.sleep(0.2)
        server.down.set()  # and it never comes back
        for i in range(1, 6):
            yield _frame(i)

    config = ClientConfig(mode="frames", max_in_flight=2, buffer_size=2, outage_timeout_s=0.3, retries=1,
                          backoff_s=0.01,
                          backoff_max_s=0.05)
    start = time.monotonic()
    summary, delivered, metrics = _run(config, server, frames())
    assert time.monotonic() - start < 10
    assert [r.status for r in delivered] == ["ok"] + ["failed"] * 5
    assert "still unreachable after waiting 0.3 s" in delivered[1].error
    assert summary.outages == 1 and metrics["server_outages_total"] == 1  # later frames used their retries, no new wait
    assert delivered[-1].attempts == 2


def test_a_server_that_never_answered_is_not_waited_for():
    server = FlakyServer()
    server.down.set()
    waits = []

    async def sleep(seconds):
        waits.append(seconds)

    config = ClientConfig(mode="frames", max_in_flight=1, retries=2, backoff_s=0.5, outage_timeout_s=60)
    summary, delivered, metrics = _run(config, server, [_frame(i) for i in range(3)], sleep=sleep)
    assert [r.status for r in delivered] == ["failed"] * 3 and [r.attempts for r in delivered] == [3, 3, 3]
    assert waits == [0.5, 1.0] * 3 and summary.outages == 0 and metrics["server_outages_total"] == 0


def test_outage_timeout_zero_keeps_per_frame_retries():
    server = FlakyServer()

    def frames():
        yield _frame(0)
        time.sleep(0.2)
        server.down.set()
        yield _frame(1)

    config = ClientConfig(mode="frames", outage_timeout_s=0, retries=1, backoff_s=0.01)
    summary, delivered, _ = _run(config, server, frames())
    assert [r.status for r in delivered] == ["ok", "failed"] and delivered[1].attempts == 2
    assert summary.outages == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"buffer_size": -1}, "buffer_size"), ({"outage_timeout_s": -1}, "outage_timeout_s"),
    ({"when_full": "queue"}, "when_full"), ({"tls": True, "tls_cert": "c.pem"}, "tls_cert"),
    ({"tls_ca": "ca.pem"}, "--tls"), ({"tls": True, "tls_ca": "/no/such/ca.pem"}, "not a file"),
])
def test_bad_buffer_and_tls_settings_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ClientConfig(**kwargs)


def test_drop_is_the_old_name_of_drop_newest():
    assert ClientConfig(mode="frames", when_full="drop").drop_policy == "drop-newest"
    assert ClientConfig(mode="frames", when_full="drop-oldest").drop_policy == "drop-oldest"


def test_grpc_errors_are_classified_for_retries_and_outages():
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")
    from tritonclient.utils import InferenceServerException

    from anoncodec.edge.transport import TritonInference, triton_error
    from anoncodec.errors import RequestRejectedError, ServerUnavailableError

    cases = [("StatusCode.UNAVAILABLE", "failed to connect to all addresses", ServerUnreachableError),
             ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", ServerUnavailableError),
             ("StatusCode.INVALID_ARGUMENT", "FRAME is 0x4 pixels", RequestRejectedError),
             ("StatusCode.UNAVAILABLE", "This protocol is restricted, expecting header 'x'", RequestRejectedError)]
    for status, message, kind in cases:
        error = triton_error(InferenceServerException(msg=message, status=status), "m", "127.0.0.1:1")
        assert type(error) is kind, (status, message, error)
    assert not isinstance(triton_error(InferenceServerException(msg="x", status="StatusCode.DEADLINE_EXCEEDED"),
                                       "m", "127.0.0.1:1"), ServerUnreachableError)
    args = dict(TritonInference("h:1", "frames", reconnect_s=(0.05, 2.0))._channel_args())
    assert args["grpc.initial_reconnect_backoff_ms"] == 100 and args["grpc.max_reconnect_backoff_ms"] == 2000
    assert args["grpc.max_send_message_length"] == 2**31 - 1
