"""A short headless Locust run (about 20 s) against the real Triton, both ensembles, 0 failures.

``load_tests/run.py`` drives ``load_tests/locustfile.py`` with the step load (2 users for
10 s, then 4 users for 10 s; Locust splits them between ``AnonymizeFrameUser`` and
``AnalyzeBitstreamUser``) against the session server of ``conftest.py``, then the test reads
Locust's own CSV/HTML, the per-request log and the capacity summary, and checks the
request counts against Triton's own ``nv_inference_request_success`` counters.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.triton]

# never import locust here: it monkey-patches the whole process with gevent (it runs in a subprocess)
if importlib.util.find_spec("locust") is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("locust (extra `ops`) is not installed, and CI must not skip this test")
    pytest.skip("locust (extra `ops`) is not installed", allow_module_level=True)
pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")

REPO = Path(__file__).resolve().parents[2]
ENSEMBLES = ("anonymize_frame", "analyze_bitstream")


def successes(metrics_url: str) -> dict[str, float]:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    pattern = r'^nv_inference_request_success\{model="(\w+)",version="1"\} (\S+)$'
    return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text, re.MULTILINE)}


def test_headless_locust_run_has_no_failures(server, exported, tmp_path):
    out = tmp_path / "locust"
    before = successes(server.metrics_url)
    command = [sys.executable, "load_tests/run.py", "--url", server.grpc_url, "--export-dir", str(exported / "repo"),
               "--start-users", "2", "--step-users", "2", "--max-users", "4", "--step-seconds", "10",
               "--settle-seconds", "2", "--frames", "4", "--out", str(out), "--require-no-failures"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    after = successes(server.metrics_url)
    print((out / "summary.md").read_text())

    # Locust's own reports, with both ensembles and no failure
    for name in ("mixed_stats.csv", "mixed_stats_history.csv", "mixed_failures.csv", "mixed.html"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "mixed_stats.csv", newline="") as f:
        stats = {row["Name"]: row for row in csv.DictReader(f)}
    for ensemble in ENSEMBLES:
        assert stats[ensemble]["Type"] == "grpc"
        assert int(stats[ensemble]["Request Count"]) > 0 and int(stats[ensemble]["Failure Count"]) == 0
    assert int(stats["Aggregated"]["Failure Count"]) == 0

    # the capacity summary
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"]["mixed"]
    assert run["meta"]["stop_reason"] == "completed"
    assert run["totals"]["all"]["failures"] == 0
    assert [s["users"] for s in run["steps"] if s["name"] == "all"] == [2, 4]
    for ensemble in ENSEMBLES:
        requests = run["totals"][ensemble]["requests"]
        # Locust's CSV may be written before the requests in flight at the stop have returned
        assert requests >= int(stats[ensemble]["Request Count"])
        # Triton saw every one of them (and perhaps requests still in flight when Locust stopped)
        assert after[ensemble] - before.get(ensemble, 0) >= requests
        step = [s for s in run["steps"] if s["name"] == ensemble][0]
        assert step["requests"] > 0 and step["p95_ms"] >= step["p50_ms"] > 0
    assert "| step | users | ensemble |" in (out / "summary.md").read_text()
