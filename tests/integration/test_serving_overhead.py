"""Smoke run of benchmarks/serving_overhead.py against the session's tritonserver."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.triton]


def _benchmark():
    spec = importlib.util.spec_from_file_location("serving_overhead", ROOT / "benchmarks" / "serving_overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_serving_overhead_smoke(server, exported, tmp_path):
    out = tmp_path / "serving_overhead.json"
    code = _benchmark().main(["--repository", str(exported / "repo"), "--url", server.grpc_url,
                              "--repeats", "2", "--warmup", "1", "--concurrency", "1", "--frames", "2",
                              "--width", "128", "--height", "96", "--out", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    for ensemble in ("anonymize_frame", "analyze_bitstream"):
        run = record["results"][ensemble]["1"]
        assert run["triton"]["requests"] == 2 and run["direct"]["requests"] == 2
        assert record["stage_breakdown"][ensemble]["decoder"]["calls"] == 2
        assert record["outputs_match"][ensemble]["anonymized_max_abs_diff"] <= 1
    assert record["bytes_per_frame"]["frame_mode_frame_bytes"] == 128 * 96 * 3
    assert record["bytes_per_frame"]["packet_mode_packet_bytes_mean"] > 0
    assert record["commit"] and record["versions"]
