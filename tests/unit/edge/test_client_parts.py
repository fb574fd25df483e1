"""The camera client's parts on their own: the run tally and metrics, the output sinks, the
outage watch, and the modules' one-way imports (with the names ``edge.client`` re-exports).
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("prometheus_client", reason="prometheus-client (extra `serve`) is not installed")

from anoncodec.edge.client_config import ClientConfig  # noqa: E402
from anoncodec.edge.metrics import CameraMetrics  # noqa: E402
from anoncodec.edge.outage import OutageWatch  # noqa: E402
from anoncodec.edge.results import FrameResult, RunTally  # noqa: E402
from tests.conftest import read_video_frames  # noqa: E402

EDGE = Path(__file__).parents[3] / "anoncodec" / "edge"
# the client's modules, each importing only modules before it (request, encoder: the runtime)
LAYERS = ["client_config", "request", "encoder", "transport", "results", "metrics", "outage", "sinks", "client"]


def _ok(index, latency_ms, size, attempts=1, shape=(8, 8)):
    return FrameResult(index, index / 10, "ok", bytes_sent=size, attempts=attempts, latency_ms=latency_ms,
                       boxes_xyxy=np.array([[1, 1, 5, 5]], np.float32), scores=np.array([0.9], np.float32),
                       anonymized=np.full((*shape, 3), 100, np.uint8))


def _results():
    return [_ok(0, 10.0, 100), _ok(1, 30.0, 300, attempts=3),
            FrameResult(2, 0.2, "failed", bytes_sent=50, attempts=2, error="server down"),
            FrameResult(3, 0.3, "dropped", error="buffer full")]


def test_tally_and_metrics_count_ok_failed_and_dropped_frames():
    tally, metrics = RunTally(), CameraMetrics("frames")
    for result in _results():
        tally.add(result)
        metrics.record(result)
    summary = tally.summary("frames", 2.0, outages=1)
    assert (summary.frames_ok, summary.frames_failed, summary.frames_dropped) == (2, 1, 1)
    assert summary.retries == 3  # 0 + 2 + 1; a dropped frame made no attempt
    assert summary.latency_p50_ms == pytest.approx(20.0) and summary.latency_p95_ms == pytest.approx(29.0)
    assert summary.mean_bytes_per_frame == pytest.approx(150.0)
    assert (summary.fps, summary.last_error, summary.outages) == (1.0, "server down", 1)

    def sample(name):
        return metrics.registry.get_sample_value(name, {"mode": "frames"})

    assert sample("anoncodec_camera_frames_dropped_total") == 1
    assert sample("anoncodec_camera_frames_failed_total") == 1
    assert sample("anoncodec_camera_bytes_per_frame_count") == 3
    assert sample("anoncodec_camera_latency_seconds_count") == 2
    assert sample("anoncodec_camera_latency_seconds_sum") == pytest.approx(0.04)


def test_an_empty_tally_has_no_latency_or_bytes():
    summary = RunTally().summary("packets", 0.0)
    assert (summary.latency_p50_ms, summary.mean_bytes_per_frame, summary.fps) == (None, None, 0.0)


def test_sinks_write_a_line_per_frame_and_only_ok_frames_to_the_video(tmp_path):
    pytest.importorskip("cv2", reason="opencv (extra `edge`) is not installed")
    pytest.importorskip("tqdm", reason="tqdm (extra `edge`) is not installed")
    from anoncodec.edge.sinks import ResultSinks

    results = [*_results(), _ok(4, 5.0, 100, shape=(16, 12))]  # a later frame of another size
    sinks = ResultSinks(str(tmp_path / "out.avi"), str(tmp_path / "d.jsonl"), fps=5.0)
    tally = RunTally()
    for result in results:
        tally.add(result)
        sinks.write(result, tally)
    sinks.close()
    lines = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["ok", "ok", "failed", "dropped", "ok"]
    assert all("anonymized" not in line for line in lines)  # no pixels in the detections file
    assert sinks.video.frames == 3 and sinks.video.size == (8, 8)
    frames = read_video_frames(tmp_path / "out.avi")
    assert len(frames) == 3 and {f.shape for f in frames} == {(8, 8, 3)}  # resized to the first frame


def test_sinks_without_files_only_move_the_progress_bar():
    pytest.importorskip("tqdm", reason="tqdm (extra `edge`) is not installed")
    from anoncodec.edge.sinks import ResultSinks

    sinks = ResultSinks(None, None, fps=10.0, progress=True, total=2)
    tally = RunTally()
    tally.add(_results()[0])
    sinks.write(_results()[0], tally)
    sinks.close()
    assert sinks.video is None and sinks.detections is None
    assert sinks.bar.n == 1 and "ok=1" in sinks.bar.postfix


class _Probe:
    """An inference function whose ``ready()`` answers True from call ``ready_at`` on (None: never)."""

    def __init__(self, ready_at=None, error_first=False):
        self.ready_at, self.error_first, self.calls = ready_at, error_first, 0

    async def __call__(self, payload):  # pragma: no cover - the watch never sends requests
        raise AssertionError("OutageWatch sent a request")

    async def ready(self):
        self.calls += 1
        if self.error_first and self.calls == 1:
            raise OSError("probe failed")
        return self.ready_at is not None and self.calls >= self.ready_at


def _watch_one_outage(infer, config):
    waits, ended = [], []
    metrics = CameraMetrics(config.mode)

    async def sleep(seconds):
        waits.append(seconds)

    async def scenario():
        watch = OutageWatch(config, metrics, infer, sleep, lambda back, elapsed: ended.append(back))
        watch.seen_server = True
        assert watch.start() and watch.pending and not watch.start()  # one outage at a time
        assert metrics.registry.get_sample_value("anoncodec_camera_server_reachable", {"mode": "frames"}) == 0
        back = await watch.wait()
        assert not watch.pending
        watch.cancel()
        return watch, back

    watch, back = asyncio.run(scenario())
    assert ended == [back] and watch.count == 1 and watch.seen_server is back
    assert metrics.registry.get_sample_value("anoncodec_camera_server_outages_total", {"mode": "frames"}) == 1
    reachable = metrics.registry.get_sample_value("anoncodec_camera_server_reachable", {"mode": "frames"})
    assert reachable == (1 if back else 0)
    return back, waits


CONFIG = ClientConfig(mode="frames", outage_timeout_s=3.0, backoff_s=0.25, backoff_factor=2.0, backoff_max_s=1.0)


def test_outage_probe_waits_grow_and_give_up_after_the_timeout():
    infer = _Probe(ready_at=None)
    back, waits = _watch_one_outage(infer, CONFIG)
    assert back is False
    assert waits == [0.25, 0.5, 1.0, 1.0, 0.25]  # capped at backoff_max_s, cut at outage_timeout_s
    assert infer.calls == len(waits)


def test_outage_ends_when_the_server_is_ready_again_and_a_failing_probe_is_not_ready():
    infer = _Probe(ready_at=3, error_first=True)
    back, waits = _watch_one_outage(infer, CONFIG)
    assert back is True and waits == [0.25, 0.5, 1.0] and infer.calls == 3


def test_an_infer_function_without_ready_counts_as_back_at_the_first_probe():
    async def infer(payload):  # pragma: no cover - never called
        raise AssertionError

    back, waits = _watch_one_outage(infer, CONFIG)
    assert back is True and waits == [0.25]


def _edge_imports(name: str) -> set[str]:
    tree = ast.parse((EDGE / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("anoncodec.edge."):
            found.add(node.module.rsplit(".", 1)[-1])
    return found


def test_client_modules_import_one_way():
    for i, name in enumerate(LAYERS):
        later = _edge_imports(name) & set(LAYERS[i:])
        assert not later, f"anoncodec.edge.{name} imports {sorted(later)}, which come after it"


def test_edge_client_still_exports_every_name_from_its_new_home():
    client = importlib.import_module("anoncodec.edge.client")
    homes = {"client_config": ["MODES", "ClientConfig", "backoff_schedule"],
             "transport": ["InferenceResult", "ServerUnreachableError", "TritonInference"],
             "results": ["FrameResult", "CameraSummary"], "metrics": ["CameraMetrics"],
             "sinks": ["draw_detections"], "encoder": ["find_encoder_files"]}
    moved = {name: module for module, names in homes.items() for name in names}
    assert set(client.__all__) == {*moved, "CameraClient", "RequestRejectedError"}
    for name, module in moved.items():
        assert getattr(client, name) is getattr(importlib.import_module(f"anoncodec.edge.{module}"), name), name
    from anoncodec.errors import RequestRejectedError

    assert client.RequestRejectedError is RequestRejectedError
