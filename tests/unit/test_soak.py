"""load_tests/soak.py: windows, drift inputs and the capacity users (no server, no Locust)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from anoncodec.qa.loadtest import RequestRecord
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "load_tests"))
spec = importlib.util.spec_from_file_location("soak", REPO / "load_tests" / "soak.py")
soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)


def _record(t, ms, ok=True):
    return RequestRecord(start_s=t, name="anonymize_frame", latency_ms=ms, ok=ok, bytes=10, error="" if ok else "x")


def test_windows_count_requests_failures_and_percentiles():
    records = [_record(0.5, 100), _record(1.5, 300), _record(2.5, 200, ok=False), _record(3.0, 400)]
    out = soak.windows(records, duration_s=4.0, window_s=2.0)
    assert [(w["start_s"], w["end_s"]) for w in out] == [(0.0, 2.0), (2.0, 4.0)]
    assert [w["requests"] for w in out] == [2, 2] and [w["failures"] for w in out] == [0, 1]
    assert out[0]["p50_ms"] == 200.0 and out[1]["p95_ms"] == 400.0  # failures have no latency
    assert out[0]["throughput_rps"] == 1.0 and out[1]["throughput_rps"] == 0.5
    assert soak.windows([], 3.0, 2.0)[1] == {"start_s": 2.0, "end_s": 3.0, "requests": 0, "failures": 0,
                                              "throughput_rps": 0.0, "p50_ms": None, "p95_ms": None}


def test_capacity_users_come_from_the_best_step_of_a_run_summary(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"runs": {"mixed": {"capacity": {"all": {"users": 3, "rps": 1.5}}},
                                         "other": {"capacity": {"all": {"users": 2, "rps": 1.1}}},
                                         "failed": None}}))
    assert soak.capacity_users(path) == 3
    assert soak.capacity_users(tmp_path / "missing.json") is None


def test_bad_arguments_and_a_missing_export_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        soak.parse_args(["--duration", "0"])
    assert soak.cli(["--repository", str(tmp_path), "--duration", "1", "--out", str(tmp_path / "o")]) == 2
    assert "anoncodec export" in capsys.readouterr().err
