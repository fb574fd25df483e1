"""The camera client survives a tritonserver crash and restart mid-stream.

Starts its own tritonserver (not the session one: this test kills it) on the exported
repository, streams two live-paced generated sources at once (packets mode with
``--when-full drop-oldest`` and a small buffer; frames mode with ``block``), SIGKILLs the
server and its python stubs mid-stream, restarts it on the same ports, and checks the
detections JSON lines: every frame index exactly once, in order; every frame kept in the
buffer delivered ``ok`` after the restart (the in-flight ones resent); the overflow
``dropped`` and counted in the Prometheus counter; no frame ``failed``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from anoncodec.serving import launcher
from anoncodec.serving.launcher import port_in_use
from tests.integration.conftest import start_own_server

pytestmark = [pytest.mark.slow, pytest.mark.triton]

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")
pytest.importorskip("prometheus_client", reason="prometheus-client (extra `serve`) is not installed")

BUFFER = 4
H, W = 48, 64


class PacedSource:
    """Generated frames at ``fps`` until ``stop``, none while ``pause`` is set; remembers
    when each frame was read."""

    def __init__(self, fps: float, stop: threading.Event) -> None:
        self.fps, self.stop = fps, stop
        self.pause = threading.Event()
        self.read_at: list[float] = []

    def __iter__(self):
        from anoncodec.edge.sources import Frame

        rng = np.random.default_rng(0)
        i = 0
        while not self.stop.is_set():
            if self.pause.is_set():
                time.sleep(0.05)
                continue
            self.read_at.append(time.monotonic())
            yield Frame(i, i / self.fps, rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
            i += 1
            time.sleep(1 / self.fps)


class Stream:
    """One camera client streaming in its own thread."""

    def __init__(self, name: str, config, fps: float) -> None:
        from anoncodec.edge.client import CameraClient

        self.name, self.config = name, config
        self.stop = threading.Event()
        self.source = PacedSource(fps, self.stop)
        self.results: list = []
        self.summary = None
        self.client = CameraClient(config)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        self.summary = self.client.run(self.source, on_result=self.results.append)

    def all_delivered(self) -> bool:
        return len(self.results) == len(self.source.read_at)

    def delivered_ok_after(self, t: float) -> int:
        return sum(1 for r in list(self.results) if r.status == "ok" and self.source.read_at[r.index] > t)

    def metric(self, name: str) -> float:
        return self.client.metrics.registry.get_sample_value(name, {"mode": self.config.mode})


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def test_frames_in_the_buffer_survive_a_crash_and_restart_exactly_once_in_order(exported, tmp_path):
    from anoncodec.edge.client_config import ClientConfig
    server = start_own_server(exported, tmp_path)
    common = dict(url=server.grpc_url, export_dir=str(exported / "repo"), max_in_flight=2, buffer_size=BUFFER,
                  backoff_s=0.2, backoff_max_s=1.0, outage_timeout_s=120, retries=2, request_timeout_s=30)
    streams = [Stream("packets", ClientConfig(mode="packets", when_full="drop-oldest",
                                              detections=str(tmp_path / "packets.jsonl"), **common), fps=1.5),
               Stream("frames", ClientConfig(mode="frames", when_full="block",
                                             detections=str(tmp_path / "frames.jsonl"), **common), fps=1.0)]
    try:
        for s in streams:
            s.thread.start()
        _wait(lambda: all(s.delivered_ok_after(0) >= 2 for s in streams), 120, "2 frames per stream")
        regions = launcher._shm_regions(server.process.pid)  # python-backend shared memory (frames pass there)
        killed_at = time.monotonic()
        server.kill()  # SIGKILL tritonserver and its python stubs: a crash
        assert not server.is_ready()
        assert regions and not [r for r in regions if Path(r).exists()], "the killed server's /dev/shm is left"
        time.sleep(3)  # frames keep coming while the server is down
        ports = (server.config.grpc_port, server.config.http_port, server.config.metrics_port)
        _wait(lambda: not any(port_in_use("127.0.0.1", p) for p in ports), 30, "free ports")
        server.start()  # same ports; the clients find it by themselves
        back_at = time.monotonic()
        for s in streams:  # this CPU serves slower than the cameras film: let the held frames drain first
            s.source.pause.set()
        _wait(lambda: all(s.all_delivered() for s in streams), 120, "the held frames")
        for s in streams:
            s.source.pause.clear()
        _wait(lambda: all(s.delivered_ok_after(back_at) >= 1 for s in streams), 120,
              "a frame read after the restart per stream")
    finally:
        for s in streams:
            s.stop.set()
        for s in streams:
            s.thread.join(120)
            s.client.close()
        server.close()
    print(f"outage {back_at - killed_at:.1f} s (kill to ready)")
    for s in streams:
        assert not s.thread.is_alive() and s.summary is not None, f"{s.name} did not finish"
        lines = [json.loads(line) for line in (tmp_path / f"{s.name}.jsonl").read_text().splitlines()]
        statuses = [line["status"] for line in lines]
        dropped = [line["frame"] for line in lines if line["status"] == "dropped"]
        during = [i for i, t in enumerate(s.source.read_at) if killed_at < t < back_at]
        print(f"{s.name}: {len(lines)} frames, {statuses.count('ok')} ok, {len(dropped)} dropped, "
              f"{len(during)} read while the server was down; summary {s.summary.to_dict()}")
        assert [line["frame"] for line in lines] == list(range(len(s.source.read_at)))  # once each, in order
        assert set(statuses) <= {"ok", "dropped"}, [line for line in lines if line["status"] not in ("ok", "dropped")]
        assert s.summary.outages == 1 and s.metric("anoncodec_camera_server_outages_total") == 1
        assert s.metric("anoncodec_camera_frames_dropped_total") == len(dropped) == s.summary.frames_dropped
        assert s.metric("anoncodec_camera_frames_buffered") == 0
        assert max(line["attempts"] for line in lines) >= 2  # requests cut by the crash were sent again
        held = BUFFER + s.config.max_in_flight
        if s.config.when_full == "block":  # reading stopped while the buffer was full; nothing dropped
            assert dropped == [] and len(during) <= held + 1
        else:  # drop-oldest: the outage overflowed the buffer; the newest frames were kept and sent
            assert len(during) > held and len(dropped) >= len(during) - held
            kept = during[-BUFFER:]
            assert [statuses[i] for i in kept] == ["ok"] * BUFFER, kept
            dropped_before = [i for i in dropped if s.source.read_at[i] < back_at]
            assert all(i < kept[0] for i in dropped_before), (kept, dropped_before)
