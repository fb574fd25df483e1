"""CameraClient logic without a server: a fake inference function is injected.

Covers in-order delivery when responses come back out of order, the in-flight bound, the
backoff schedule and retries, permanent errors, the drop policy, and the outputs (JSON
lines, annotated video of anonymized frames only, metrics).
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request

import numpy as np
import pytest

pytest.importorskip("prometheus_client", reason="prometheus-client (extra `serve`) is not installed")
cv2 = pytest.importorskip("cv2", reason="opencv (extra `edge`) is not installed")

from anoncodec.edge.client import CameraClient  # noqa: E402
from anoncodec.edge.client_config import ClientConfig, backoff_schedule  # noqa: E402
from anoncodec.edge.encoder import find_encoder_files  # noqa: E402
from anoncodec.edge.sources import Frame  # noqa: E402
from anoncodec.edge.transport import InferenceResult  # noqa: E402
from anoncodec.errors import (  # noqa: E402
    ConfigError,
    ExportError,
    RequestRejectedError,
    ServerUnavailableError,
)
from tests.conftest import read_video_frames  # noqa: E402

H, W = 24, 32


def _frames(n):
    """Frame i is filled with the value i, so a result can be traced to its frame."""
    return [Frame(i, i / 10, np.full((H, W, 3), i, np.uint8)) for i in range(n)]


class FakeServer:
    """An async inference function: echoes the frame inverted, one box per frame.

    Args:
        delays: seconds each call takes, by frame value (default: later frames answer first).
        unavailable: how many times each frame is refused with ServerUnavailableError first.
        reject: frame values answered with a permanent error.
    """

    def __init__(self, delays=None, unavailable=0, reject=()):
        self.delays = delays
        self.unavailable = unavailable
        self.reject = set(reject)
        self.calls: dict[int, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, frame_rgb):
        i = int(frame_rgb[0, 0, 0])
        self.calls[i] = self.calls.get(i, 0) + 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            delay = self.delays[i] if self.delays is not None else 0.002 * (10 - i % 10)
            await asyncio.sleep(delay)
            if self.calls[i] <= self.unavailable:
                raise ServerUnavailableError(f"fake server: frame {i} refused")
            if i in self.reject:
                raise RequestRejectedError(f"fake server: INVALID_ARGUMENT for frame {i}")
            box = np.array([[i, i, i + 10, i + 5]], np.float32)
            return InferenceResult(255 - frame_rgb, box, np.array([0.5], np.float32), bits=8 * i)
        finally:
            self.in_flight -= 1


def _run(config, server, frames, **kw):
    delivered = []
    with CameraClient(config, infer=server, **kw) as client:
        summary = client.run(frames, on_result=delivered.append)
    return summary, delivered


def test_results_are_delivered_in_frame_order_although_answers_come_back_reversed(tmp_path):
    server = FakeServer()
    config = ClientConfig(mode="frames", max_in_flight=5, detections=str(tmp_path / "d.jsonl"))
    summary, delivered = _run(config, server, _frames(12))
    assert [r.index for r in delivered] == list(range(12))
    for r in delivered:
        assert r.status == "ok" and r.attempts == 1
        assert int(r.anonymized[0, 0, 0]) == 255 - r.index
        np.testing.assert_array_equal(r.boxes_xyxy, [[r.index, r.index, r.index + 10, r.index + 5]])
    assert server.max_in_flight == 5  # the bound is reached and never exceeded
    lines = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(12))
    assert lines[3] == {"frame": 3, "timestamp": 0.3, "status": "ok", "boxes": [[3.0, 3.0, 13.0, 8.0]],
                        "scores": [0.5], "bytes_sent": H * W * 3, "bits": 24,
                        "latency_ms": lines[3]["latency_ms"], "wait_ms": lines[3]["wait_ms"], "attempts": 1,
                        "error": None}
    assert lines[3]["latency_ms"] > 0
    assert (summary.frames_ok, summary.frames_failed, summary.frames_dropped) == (12, 0, 0)
    assert summary.mean_bytes_per_frame == H * W * 3 and summary.mode == "frames"
    assert 0 < summary.latency_p50_ms <= summary.latency_p95_ms


def test_max_in_flight_one_is_sequential():
    server = FakeServer()
    summary, delivered = _run(ClientConfig(mode="frames", max_in_flight=1), server, _frames(5))
    assert server.max_in_flight == 1 and summary.frames_ok == 5


def test_backoff_schedule_grows_exponentially_and_is_capped():
    assert backoff_schedule(5, 0.5, 2.0, 3.0) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_schedule(0, 0.5) == []
    assert backoff_schedule(3, 0.1, 1.0, 9.0) == [0.1, 0.1, 0.1]


def test_retries_wait_the_backoff_schedule_then_succeed():
    waits = []

    async def sleep(seconds):
        waits.append(seconds)

    server = FakeServer(unavailable=2)
    config = ClientConfig(mode="frames", max_in_flight=1, retries=3, backoff_s=0.25, backoff_factor=2.0,
                          backoff_max_s=10)
    summary, delivered = _run(config, server, _frames(2), sleep=sleep)
    assert waits == [0.25, 0.5, 0.25, 0.5]  # two retries per frame
    assert [r.attempts for r in delivered] == [3, 3] and summary.frames_ok == 2 and summary.retries == 4


def test_server_down_fails_each_frame_after_bounded_retries(tmp_path):
    waits = []

    async def sleep(seconds):
        waits.append(seconds)

    server = FakeServer(unavailable=99)
    config = ClientConfig(mode="frames", max_in_flight=2, retries=2, backoff_s=1.0,
                          detections=str(tmp_path / "d.jsonl"),
                          output_video=str(tmp_path / "out.avi"))
    summary, delivered = _run(config, server, _frames(3), sleep=sleep)
    assert all(server.calls[i] == 3 for i in range(3))
    assert sorted(waits) == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    assert [r.status for r in delivered] == ["failed"] * 3
    assert (summary.frames_ok, summary.frames_failed) == (0, 3) and summary.latency_p50_ms is None
    assert "refused" in summary.last_error
    lines = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [(line["frame"], line["status"], line["attempts"]) for line in lines] == [(i, "failed", 3) for i in range(3)]
    assert not (tmp_path / "out.avi").exists()  # nothing anonymized came back, and raw frames are never written


def test_a_rejected_request_fails_at_once_without_retry():
    server = FakeServer(reject={1})
    summary, delivered = _run(ClientConfig(mode="frames", retries=3, backoff_s=5.0), server, _frames(3))
    assert [r.status for r in delivered] == ["ok", "failed", "ok"]
    assert server.calls[1] == 1 and delivered[1].attempts == 1 and "INVALID_ARGUMENT" in delivered[1].error
    assert (summary.frames_ok, summary.frames_failed) == (2, 1)


def test_drop_policy_skips_frames_while_every_slot_is_taken():
    # no buffer: the first two frames fill both slots; the next three are read while those are in flight
    server = FakeServer(delays=[0.6, 0.6, 0, 0, 0])
    config = ClientConfig(mode="frames", max_in_flight=2, when_full="drop", buffer_size=0)
    summary, delivered = _run(config, server, _frames(5))
    assert [r.status for r in delivered] == ["ok", "ok", "dropped", "dropped", "dropped"]
    assert (summary.frames_ok, summary.frames_dropped) == (2, 3) and set(server.calls) == {0, 1}
    assert summary.mean_bytes_per_frame == H * W * 3  # dropped frames are not counted as sent


def test_block_policy_sends_every_frame():
    server = FakeServer(delays=[0.05] * 6)
    summary, delivered = _run(ClientConfig(mode="frames", max_in_flight=2, when_full="block"), server, _frames(6))
    assert summary.frames_ok == 6 and summary.frames_dropped == 0 and server.max_in_flight == 2


def test_stop_event_ends_reading_and_delivers_what_was_sent():
    stop = threading.Event()
    delivered = []

    def on_result(result):
        delivered.append(result)
        if result.index == 2:
            stop.set()

    with CameraClient(ClientConfig(mode="frames", max_in_flight=1), infer=FakeServer()) as client:
        summary = client.run(_frames(50), stop=stop, on_result=on_result)
    assert 3 <= summary.frames_ok < 50 and [r.index for r in delivered] == list(range(summary.frames_ok))


def test_annotated_video_holds_one_anonymized_frame_per_ok_frame(tmp_path):
    out = tmp_path / "out.avi"
    summary, _ = _run(ClientConfig(mode="frames", output_video=str(out)), FakeServer(reject={2}), _frames(5))
    frames = read_video_frames(out)
    assert len(frames) == summary.frames_ok == 4
    assert frames[0].shape == (H, W, 3)
    # the server's (inverted) frame, not the raw one: raw frame 0 is black, its answer near white
    assert np.median(frames[0]) > 200


def test_metrics_are_served_on_the_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ClientConfig(mode="frames", metrics_port=port, metrics_addr="127.0.0.1")
    with CameraClient(config, infer=FakeServer(unavailable=1), sleep=lambda s: asyncio.sleep(0)) as client:
        client.run(_frames(3))
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'anoncodec_camera_frames_sent_total{mode="frames"} 3.0' in text
    assert 'anoncodec_camera_retries_total{mode="frames"} 3.0' in text
    assert 'anoncodec_camera_latency_seconds_count{mode="frames"} 3.0' in text
    assert f'anoncodec_camera_bytes_per_frame_sum{{mode="frames"}} {float(3 * H * W * 3)}' in text
    assert 'anoncodec_camera_frames_failed_total{mode="frames"} 0.0' in text
    assert 'anoncodec_camera_frames_dropped_total{mode="frames"} 0.0' in text


@pytest.mark.parametrize("field, value", [("mode", "jpeg"), ("max_in_flight", 0), ("retries", -1),
                                          ("when_full", "queue"), ("backoff_factor", 0.5),
                                          ("detections", "/no/such/folder/d.jsonl")])
def test_bad_config_raises_config_error(field, value):
    with pytest.raises(ConfigError, match=field):
        ClientConfig(**{field: value})


def test_packets_mode_without_an_encoder_export_is_refused(tmp_path):
    with pytest.raises(ExportError, match="no camera encoder"):
        find_encoder_files(tmp_path)
    with pytest.raises(ExportError, match="--export-dir"):
        CameraClient(ClientConfig(mode="packets", export_dir=str(tmp_path)), infer=FakeServer())


def test_packets_mode_sends_packets_from_both_export_layouts(tmp_path):
    from anoncodec.codec.onnx_export import export_codec
    from anoncodec.packet import unpack
    from tests.conftest import tiny_codec

    export_codec(tiny_codec("factorized"), tmp_path / "onnx")
    repo = tmp_path / "repo"
    (repo / "encoder" / "1").mkdir(parents=True)
    (repo / "quantize" / "1").mkdir(parents=True)
    (repo / "encoder" / "1" / "model.onnx").write_bytes((tmp_path / "onnx" / "encoder.onnx").read_bytes())
    (repo / "quantize" / "1" / "tables.npz").write_bytes((tmp_path / "onnx" / "tables.npz").read_bytes())
    for export_dir in (tmp_path / "onnx", repo):
        received = []

        async def infer(packet, received=received):
            received.append(unpack(packet))
            return InferenceResult(np.zeros((H, W, 3), np.uint8), np.zeros((0, 4), np.float32),
                                   np.zeros(0, np.float32))

        config = ClientConfig(mode="packets", export_dir=str(export_dir))
        summary, delivered = _run(config, infer, _frames(3))
        assert [(p.height, p.width) for p in received] == [(H, W)] * 3
        assert summary.mode == "packets" and summary.frames_ok == 3
        assert summary.mean_bytes_per_frame == np.mean([r.bytes_sent for r in delivered]) < H * W * 3


def test_clients_camera_script_is_the_camera_subcommand(capsys):
    import runpy

    from tests.conftest import REPO

    script = runpy.run_path(str(REPO / "clients" / "camera.py"))
    with pytest.raises(SystemExit) as exc:
        script["main"](["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: anoncodec camera" in out and "--max-in-flight" in out and "--export-dir" in out
