"""The camera client against the real local tritonserver, in both modes.

Streams the first frames of ``data/samples/vtest_excerpt.avi`` (768x576) through
``anoncodec camera`` to the session server of ``tests/integration/conftest.py`` (tiny
untrained codec + the offline YOLO detector), then checks the JSON lines, the annotated
video, the bytes per frame of each mode and the Prometheus endpoint; and that with no
server the client retries, reports every frame as failed and exits in bounded time.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import urllib.request

import numpy as np
import pytest

from anoncodec.cli.main import main
from tests.conftest import SAMPLES, read_video_frames
from tests.integration.conftest import free_ports

pytestmark = [pytest.mark.slow, pytest.mark.triton]

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")
pytest.importorskip("prometheus_client", reason="prometheus-client (extra `serve`) is not installed")
cv2 = pytest.importorskip("cv2", reason="opencv (extra `edge`) is not installed")

CLIP = SAMPLES / "vtest_excerpt.avi"
H, W = 576, 768
FRAMES = 8


@pytest.fixture(scope="module")
def streamed(server, exported, tmp_path_factory):
    """Run ``anoncodec camera`` once per mode; returns mode -> (summary, output folder)."""
    runs = {}
    for mode in ("frames", "packets"):
        out = tmp_path_factory.mktemp(f"camera-{mode}")
        argv = ["camera", "--source", str(CLIP), "--url", server.grpc_url, "--mode", mode,
                "--export-dir", str(exported / "repo"), "--max-frames", str(FRAMES), "--max-in-flight", "3",
                "--detections", str(out / "detections.jsonl"), "--output-video", str(out / "annotated.avi"),
                "--no-progress"]
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            assert main(argv) == 0
        runs[mode] = (json.loads(stdout.getvalue()), out)
        summary = runs[mode][0]
        print(f"camera {mode} {W}x{H}: latency p50 {summary['latency_p50_ms']:.0f} ms, p95 "
              f"{summary['latency_p95_ms']:.0f} ms, {summary['mean_bytes_per_frame']:.0f} B/frame, "
              f"{summary['fps']:.1f} frames/s (max 3 in flight)")
    return runs


@pytest.mark.parametrize("mode", ["frames", "packets"])
def test_every_frame_comes_back_in_order(streamed, mode):
    summary, out = streamed[mode]
    assert summary["mode"] == mode
    assert (summary["frames_ok"], summary["frames_failed"], summary["frames_dropped"]) == (FRAMES, 0, 0)
    lines = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(FRAMES))
    assert [line["timestamp"] for line in lines] == pytest.approx([i / 10 for i in range(FRAMES)])  # 10 fps clip
    for line in lines:
        assert line["status"] == "ok" and line["error"] is None and line["latency_ms"] > 0
        assert len(line["boxes"]) == len(line["scores"]) and all(len(b) == 4 for b in line["boxes"])
        assert (line["bits"] is not None) == (mode == "frames")
    frames = read_video_frames(out / "annotated.avi")
    assert len(frames) == FRAMES and frames[0].shape == (H, W, 3)


def test_packets_are_much_smaller_than_raw_frames(streamed):
    frames_summary, frames_out = streamed["frames"]
    packets_summary, packets_out = streamed["packets"]
    assert frames_summary["mean_bytes_per_frame"] == H * W * 3
    assert packets_summary["mean_bytes_per_frame"] < H * W * 3 / 20
    # what anonymize_frame says the camera would have sent matches the packets' payloads
    bits = [json.loads(line)["bits"] for line in (frames_out / "detections.jsonl").read_text().splitlines()]
    sent = [json.loads(line)["bytes_sent"] for line in (packets_out / "detections.jsonl").read_text().splitlines()]
    assert all(0 < b / 8 < s < b / 8 + 100 for b, s in zip(bits, sent))  # payload + header/CRC


def test_both_modes_return_the_same_anonymized_frames(streamed):
    a = read_video_frames(streamed["frames"][1] / "annotated.avi")
    b = read_video_frames(streamed["packets"][1] / "annotated.avi")
    assert np.abs(a[0].astype(int) - b[0].astype(int)).mean() < 2  # same codec; MJPG noise only


def test_metrics_are_exposed_while_streaming(server, exported):
    from anoncodec.edge.client import CameraClient
    from anoncodec.edge.client_config import ClientConfig
    from anoncodec.edge.sources import open_source

    (port,) = free_ports(1)
    config = ClientConfig(url=server.grpc_url, mode="packets", export_dir=str(exported / "repo"),
                          metrics_port=port, metrics_addr="127.0.0.1")
    with open_source(CLIP, max_frames=3) as source, CameraClient(config) as client:
        summary = client.run(source)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert summary.frames_ok == 3
    assert 'anoncodec_camera_frames_sent_total{mode="packets"} 3.0' in text
    assert 'anoncodec_camera_latency_seconds_count{mode="packets"} 3.0' in text
    assert 'anoncodec_camera_bytes_per_frame_count{mode="packets"} 3.0' in text
    assert 'anoncodec_camera_frames_failed_total{mode="packets"} 0.0' in text
    assert 'anoncodec_camera_frames_dropped_total{mode="packets"} 0.0' in text


def test_without_a_server_frames_fail_after_retries_in_bounded_time(tmp_path, capsys):
    (port,) = free_ports(1)  # nothing listens there
    start = time.monotonic()
    code = main(["camera", "--source", str(CLIP), "--url", f"127.0.0.1:{port}", "--mode", "frames", "--max-frames", "4",
                 "--retries", "2", "--backoff", "0.05", "--timeout", "5", "--no-progress",
                 "--detections", str(tmp_path / "d.jsonl"), "--output-video", str(tmp_path / "out.avi")])
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    assert code == 2 and elapsed < 30
    assert "no frame got through" in captured.err and "UNAVAILABLE" in captured.err
    summary = json.loads(captured.out)
    assert (summary["frames_ok"], summary["frames_failed"], summary["retries"]) == (0, 4, 8)
    lines = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [(line["frame"], line["status"], line["attempts"]) for line in lines] == [(i, "failed", 3) for i in range(4)]
    assert not (tmp_path / "out.avi").exists()  # raw frames are never written


def test_stream_mode_sends_one_keyframe_then_small_deltas_with_the_same_detections(server, exported, tmp_path,
                                                                                   streamed):
    """``--mode stream`` at threshold 0 decodes every frame exactly as packets mode does, for
    a fraction of the bytes after the keyframe."""
    import threading

    (port,) = free_ports(1)
    argv = ["camera", "--source", str(CLIP), "--url", server.grpc_url, "--mode", "stream",
            "--export-dir", str(exported / "repo"), "--max-frames", str(FRAMES), "--replenish-threshold", "0",
            "--head-hold", "0", "--camera-id", "77", "--detections", str(tmp_path / "stream.jsonl"),
            "--output-video", str(tmp_path / "stream.avi"), "--metrics-port", str(port),
            "--metrics-addr", "127.0.0.1", "--no-progress"]
    scrapes: list[str] = []
    done = threading.Event()

    def scrape() -> None:  # the endpoint lives as long as the run: read it while frames go out
        while not done.is_set():
            with contextlib.suppress(OSError):
                scrapes.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode())
            time.sleep(0.05)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            assert main(argv) == 0
    finally:
        done.set()
        scraper.join(5)
    summary = json.loads(stdout.getvalue())
    sent = [float(line.rsplit(" ", 1)[1]) for text in scrapes for line in text.splitlines()
            if line.startswith('anoncodec_camera_frames_sent_total{mode="stream"}')]
    assert sent and 1 <= max(sent) <= FRAMES and sent == sorted(sent)
    # threshold 0: the stream decodes exactly as packets mode, so the annotated videos agree
    video, reference = (read_video_frames(path) for path in (tmp_path / "stream.avi",
                                                              streamed["packets"][1] / "annotated.avi"))
    assert len(video) == FRAMES and video[0].shape == (H, W, 3)
    assert np.abs(video[-1].astype(int) - reference[-1].astype(int)).mean() < 2  # MJPG noise only
    assert summary["frames_ok"] == FRAMES and summary["keyframes"] == 1 and summary["deltas"] == FRAMES - 1
    assert summary["camera_id"] == 77 and summary["resyncs"] == 0
    lines = [json.loads(line) for line in (tmp_path / "stream.jsonl").read_text().splitlines()]
    assert [r["frame_type"] for r in lines] == ["key"] + ["delta"] * (FRAMES - 1)
    assert max(r["bytes_sent"] for r in lines[1:]) < lines[0]["bytes_sent"]
    packets = [json.loads(line) for line in (streamed["packets"][1] / "detections.jsonl").read_text().splitlines()]
    for s, p in zip(lines, packets):
        boxes = [np.array(r["boxes"]).reshape(-1, 4) for r in (s, p)]
        assert np.allclose(*boxes, atol=0.1), s["frame"]
