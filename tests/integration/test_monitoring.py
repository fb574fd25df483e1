"""Prometheus (the real binary) scraping the real Triton and two real camera clients.

The session server of ``tests/integration/conftest.py`` runs with summary latencies (the
launcher's default ``--metrics-config summary_latencies=true``). Two ``anoncodec camera``
processes stream the sample clip (60 frames) at 0.5 frame/s, one per mode, with their Prometheus
exporters on; Prometheus runs ``monitoring/prometheus/prometheus.yml`` with the targets
pointed at them, a 1 s scrape/evaluation interval and the repository's rule files. Then,
through Prometheus' HTTP API: every target is up, every rule is healthy, and every query
returns data (at least one finite sample): each target of the Grafana dashboard, each
recording rule (its expression and the series it records), each alert expression
(comparisons turned into ``bool`` so that a quiet alert still shows its data) and the
prometheus-adapter query behind the HPA.

Without the ``prometheus`` binary the tests skip (fail under ``CI=true``: CI installs it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from anoncodec.serving.launcher import free_ports
from tests.conftest import SAMPLES
from tests.unit.test_ops_configs import PROMETHEUS_DIR, adapter_query, dashboard_queries, grafana_to_promql

pytestmark = [pytest.mark.slow, pytest.mark.triton]

pytest.importorskip("prometheus_client", reason="prometheus-client (extra `serve`) is not installed")
pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")

CLIP = SAMPLES / "vtest_excerpt.avi"
MODES = ("frames", "packets")
DATA_TIMEOUT_S = 150


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    message = "the prometheus binary is not installed (apt-get install prometheus, or bash .ci/install-tools)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def api(base: str, path: str, **params) -> dict:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def with_bool(expr: str) -> str:
    """``a > 5 and b == 0`` -> ``a > bool 5 and b == bool 0``: comparisons outside label
    matchers keep every series (value 0/1) instead of filtering."""
    out, depth, quote, i = [], 0, None, 0
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
            out.append(c)
        elif c == "{":
            depth += 1
            out.append(c)
        elif c == "}":
            depth -= 1
            out.append(c)
        elif depth == 0 and expr.startswith(("==", "!=", ">=", "<="), i):
            out.append(expr[i:i + 2] + " bool")
            i += 1
        elif depth == 0 and c in "<>":
            out.append(c + " bool")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def test_with_bool_leaves_label_matchers_alone():
    assert with_bool('up{job!="x", a=~"b"} == 0') == 'up{job!="x", a=~"b"} == bool 0'
    assert with_bool('deriv(x[5m]) > 0 and y{q="0.95"} >= 1e5') == 'deriv(x[5m]) > bool 0 and y{q="0.95"} >= bool 1e5'


@pytest.fixture(scope="module")
def cameras(server, exported, tmp_path_factory):
    """Two ``anoncodec camera`` processes (frames, packets) exporting metrics; mode -> port."""
    out = tmp_path_factory.mktemp("cameras")
    ports = dict(zip(MODES, free_ports(len(MODES))))
    procs = {}
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for mode, port in ports.items():
        command = [sys.executable, "-m", "anoncodec.cli", "camera", "--source", str(CLIP), "--url", server.grpc_url,
                   "--mode", mode, "--export-dir", str(exported / "repo"), "--fps", "0.5", "--max-in-flight", "2",
                   "--metrics-port", str(port), "--metrics-addr", "127.0.0.1", "--no-progress",
                   "--detections", str(out / f"{mode}.jsonl")]
        procs[mode] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(out / f"{mode}.log", "wb"),
                                       stdin=subprocess.DEVNULL, env=env, text=True)
    deadline = time.monotonic() + 120
    for mode, port in ports.items():  # up and serving metrics: its SIGTERM handler is in place
        while procs[mode].poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)
    yield ports
    summaries = {}
    for mode, proc in procs.items():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # finish the frames in flight, print the summary
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, (out / f"{mode}.log").read_text()[-2000:]
        summaries[mode] = json.loads(stdout.strip().splitlines()[-1])
    for summary in summaries.values():
        assert summary["frames_ok"] > 0 and summary["frames_failed"] == 0, summary


@pytest.fixture(scope="module")
def prometheus(server, cameras, tmp_path_factory):
    """A real Prometheus with the repository's config (targets rewritten) and rules; its URL."""
    binary = prometheus_binary()
    tmp = tmp_path_factory.mktemp("prometheus")
    (port,) = free_ports(1)
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    metrics_host = urllib.parse.urlsplit(server.metrics_url).netloc
    targets = {"triton": [metrics_host], "camera": [f"127.0.0.1:{p}" for p in cameras.values()],
               "prometheus": [f"127.0.0.1:{port}"]}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp / "prometheus.log", "wb")
    proc = subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "prometheus was not ready after 30 s"
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def all_queries() -> dict[str, str]:
    """label -> PromQL of everything the dashboard, the rules and the adapter ask Prometheus."""
    queries = {f"dashboard '{title}': {expr}": grafana_to_promql(expr, "15s") for title, expr in dashboard_queries()}
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    queries[f"rule {rule['record']}"] = rule["expr"]
                    queries[f"recorded {rule['record']}"] = rule["record"]
                else:
                    queries[f"alert {rule['alert']}"] = with_bool(rule["expr"])
    queries["prometheus-adapter metricsQuery"] = adapter_query('job="triton"', "instance")
    return queries


def finite_samples(result: list[dict]) -> int:
    return sum(1 for series in result if math.isfinite(float(series["value"][1])))


def test_every_target_is_scraped(prometheus, cameras):
    deadline = time.monotonic() + 60
    while True:
        targets = api(prometheus, "/api/v1/targets")["activeTargets"]
        health = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
        if len(health) == 2 + len(cameras) and set(health.values()) == {"up"}:
            break
        assert time.monotonic() < deadline, f"targets not all up: {health}"
        time.sleep(1)


def test_every_dashboard_rule_and_adapter_query_returns_data(prometheus, cameras):
    queries = all_queries()
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while True:
        missing = {}
        for label, query in queries.items():
            result = api(prometheus, "/api/v1/query", query=query)["result"]
            if finite_samples(result) == 0:
                missing[label] = result
        if not missing:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"{len(missing)} of {len(queries)} queries returned no finite sample after "
                        f"{DATA_TIMEOUT_S} s:\n" + "\n".join(f"- {k}: {v[:3]}" for k, v in missing.items()))
        time.sleep(2)
    print(f"{len(queries)} queries returned data")
    # the numbers make sense for this traffic: packets are far smaller than raw frames
    query = ("sum by (mode) (anoncodec_camera_bytes_per_frame_sum) "
             "/ sum by (mode) (anoncodec_camera_bytes_per_frame_count)")
    sizes = {s["metric"]["mode"]: float(s["value"][1]) for s in api(prometheus, "/api/v1/query", query=query)["result"]}
    assert sizes["frames"] == 576 * 768 * 3 and 0 < sizes["packets"] < sizes["frames"] / 20
    batch = api(prometheus, "/api/v1/query", query='model:nv_inference_batch_size:avg_rate1m{model="detector"}')
    assert float(batch["result"][0]["value"][1]) >= 1


def test_every_rule_is_loaded_and_healthy(prometheus):
    groups = api(prometheus, "/api/v1/rules")["groups"]
    names = {g["name"] for g in groups}
    assert names == {"anoncodec_triton", "anoncodec_camera", "anoncodec_alerts"}
    deadline = time.monotonic() + 30
    while True:
        rules = [r for g in api(prometheus, "/api/v1/rules")["groups"] for r in g["rules"]]
        if all(r["health"] == "ok" for r in rules):
            break
        assert time.monotonic() < deadline, [(r["name"], r["health"], r.get("lastError")) for r in rules
                                             if r["health"] != "ok"]
        time.sleep(1)
    alerts = {r["name"]: r["state"] for r in rules if r["type"] == "alerting"}
    assert alerts["TritonDown"] == "inactive" and alerts["CameraExporterDown"] == "inactive"
