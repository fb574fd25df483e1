"""Soak test: hold the Locust load at the measured capacity for a long time and watch for drift.

    .venv/bin/python load_tests/soak.py [--users N | --capacity load_tests/results/summary.json]
        [--duration 600] [--window 60] [--url HOST:PORT | --repository DIR] [--out load_tests/results/soak]

Runs the same locustfile as ``load_tests/run.py`` with a constant number of closed-loop
users (both ensembles; default: the users of the highest step within the SLO in the
capacity summary ``run.py`` wrote, else 2) for ``--duration`` seconds. Meanwhile the RSS
of ``tritonserver`` and its python stubs is sampled every ``--sample-seconds`` (local
server only). Afterwards, per ``--window`` seconds: requests, failures, throughput,
p50/p95 latency. Reported: errors, p95 drift (last window's p95 / first window's) and
server memory (at start, after the first window, last, peak). The first window is the
warm-up: drift compares the last window with the first window after it. Writes ``soak.json`` and ``soak.md`` into
``--out`` and prints the table. Exit status 1 when a request failed or Locust failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python load_tests/soak.py` from a source checkout
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as step_runner  # noqa: E402  (load_tests/run.py: the Locust command line)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from anoncodec.qa.loadtest import DEFAULT_SLO_MS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--url", help="gRPC address of a running Triton (default: start the local server)")
    p.add_argument("--repository", default=str(REPO / "model_repository"), help="model repository to serve")
    p.add_argument("--export-dir", help="camera encoder for the packets (default: --repository)")
    p.add_argument("--users", type=int, help="constant closed-loop users (default: from --capacity)")
    p.add_argument("--capacity", default=str(REPO / "load_tests" / "results" / "summary.json"),
                   help="summary.json of load_tests/run.py: its capacity step gives --users")
    p.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    p.add_argument("--window", type=float, default=60.0, help="seconds per reported window")
    p.add_argument("--sample-seconds", type=float, default=10.0, help="server memory sampling period")
    p.add_argument("--video", default=str(REPO / "data" / "samples" / "vtest_excerpt.avi"), help="frames source")
    p.add_argument("--frames", type=int, default=8, help="distinct frames/packets, sent round robin")
    p.add_argument("--slo-ms", type=float, default=DEFAULT_SLO_MS, help="p95 latency objective, ms")
    p.add_argument("--request-timeout", type=float, default=60.0, help="gRPC deadline of one request, seconds")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for the local server")
    p.add_argument("--out", default=str(REPO / "load_tests" / "results" / "soak"), help="output folder")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.window <= 0 or args.sample_seconds <= 0:
        p.error("--duration, --window and --sample-seconds must be positive")
    if args.users is not None and args.users < 1:
        p.error("--users must be >= 1")
    return args


def capacity_users(path: str | Path) -> int | None:
    """Users of the capacity step (highest req/s within the SLO, no failure) in a ``run.py`` summary."""
    try:
        summary = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    best = None
    for report in (summary.get("runs") or {}).values():
        step = ((report or {}).get("capacity") or {}).get("all")
        if step and (best is None or step["rps"] > best["rps"]):
            best = step
    return int(best["users"]) if best else None


def windows(records, duration_s: float, window_s: float) -> list[dict]:
    """Per window of ``window_s``: requests, failures, req/s, p50/p95 latency (ms)."""
    from anoncodec.qa.loadtest import percentile

    out = []
    start = 0.0
    while start < duration_s - 1e-9:
        end = min(start + window_s, duration_s)
        inside = [r for r in records if start <= r.start_s < end]
        latencies = sorted(r.latency_ms for r in inside if r.ok)
        out.append({"start_s": round(start, 1), "end_s": round(end, 1), "requests": len(inside),
                    "failures": sum(not r.ok for r in inside),
                    "throughput_rps": round(len(latencies) / (end - start), 3),
                    "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
                    "p95_ms": round(percentile(latencies, 95), 1) if latencies else None})
        start = end
    return out


def _sample_memory(pid: int, period_s: float, stop: threading.Event, samples: list) -> None:
    from anoncodec.qa.fuzz_server import process_tree_rss

    started = time.monotonic()
    while not stop.is_set():
        try:
            samples.append((round(time.monotonic() - started, 1), round(process_tree_rss(pid), 1)))
        except Exception:  # the server is gone: stop sampling
            return
        stop.wait(period_s)


def render(record: dict) -> str:
    lines = [f"# Soak: {record['users']} users for {record['duration_s']:.0f} s (both ensembles)", "",
             f"machine: {record['device']}, {record['cores']} cores; commit {record['commit'][:12]}", "",
             "| window (s) | requests | failures | req/s | p50 ms | p95 ms |", "|---|---|---|---|---|---|"]
    for w in record["windows"]:
        lines.append(f"| {w['start_s']:.0f}-{w['end_s']:.0f} | {w['requests']} | {w['failures']} | "
                     f"{w['throughput_rps']:.2f} | {w['p50_ms']} | {w['p95_ms']} |")
    mem = record["memory_mib"]
    lines += ["", f"- requests: {record['requests']}, failures: {record['failures']}",
              f"- p95 drift (last window / first window after the warm-up window): {record['p95_drift']}",
              f"- load average before/after: {record['loadavg_before'][0]} / {record['loadavg_after'][0]}",
              f"- server RSS (tritonserver + python stubs): at start {mem['first']} MiB, after the warm-up window "
              f"{mem['after_warmup']} MiB, last {mem['last']} MiB, peak {mem['peak']} MiB "
              f"({len(record['memory_samples'])} samples)" if mem["first"] is not None
              else "- server RSS: not sampled (remote server)", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from anoncodec.evaluation.latency import environment
    from anoncodec.qa.loadtest import read_requests_csv

    users = args.users or capacity_users(args.capacity) or 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # run.py's command line with a one-step staircase of `users` for the whole duration
    step_args = argparse.Namespace(
        video=args.video, frames=args.frames, export_dir=args.export_dir or args.repository,
        request_timeout=args.request_timeout, start_users=users, step_users=1, max_users=users,
        step_seconds=args.duration, settle_seconds=0.0, slo_ms=args.slo_ms, stop_on_breach=False)
    server = None
    url = args.url
    if url is None:
        from anoncodec.config import ServeConfig
        from anoncodec.serving.launcher import TritonServer, free_ports

        grpc_port, http_port, metrics_port = free_ports(3)
        server = TritonServer(ServeConfig(repository=args.repository, grpc_port=grpc_port, http_port=http_port,
                                          metrics_port=metrics_port, startup_timeout=args.startup_timeout),
                              log_file=out / "tritonserver.log")
        server.start()
        url = server.grpc_url
    samples: list = []
    stop = threading.Event()
    prefix = out / "soak"
    print(f"== soak: {users} users on both ensembles at {url} for {args.duration:g} s", flush=True)
    import os

    load_before = os.getloadavg()
    try:
        sampler = None
        if server is not None:
            sampler = threading.Thread(target=_sample_memory, args=(server.process.pid, args.sample_seconds, stop,
                                                                     samples), daemon=True)
            sampler.start()
        command = step_runner.locust_command(step_args, url, list(step_runner.USER_CLASSES), prefix)
        try:
            done = subprocess.run(command, cwd=REPO, timeout=args.duration + 2 * args.request_timeout + 180)
            returncode = done.returncode
        except subprocess.TimeoutExpired:
            returncode = -1
        stop.set()
        if sampler is not None:
            sampler.join(timeout=5)
    finally:
        stop.set()
        if server is not None:
            server.close()
    if returncode != 0:
        print(f"error: Locust exited with status {returncode}", file=sys.stderr)
        return 1
    records = read_requests_csv(f"{prefix}_requests.csv")
    per_window = windows(records, args.duration, args.window)
    # the first window holds the warm-up (lazy ONNX Runtime init, allocator growth): drift and
    # memory growth are measured from the end of it
    baseline = per_window[1:] if len(per_window) >= 3 else per_window
    first = next((w["p95_ms"] for w in baseline if w["p95_ms"]), None)
    last = next((w["p95_ms"] for w in reversed(per_window) if w["p95_ms"]), None)
    rss = [m for _, m in samples]
    warm = [m for t, m in samples if t >= args.window] or rss
    record = {"kind": "soak", "users": users, "duration_s": args.duration, "window_s": args.window,
              "slo_ms": args.slo_ms, "server": "local" if server else url, **environment(),
              "requests": len(records), "failures": sum(not r.ok for r in records),
              "errors": sorted({r.error for r in records if not r.ok and r.error})[:20],
              "p95_drift": round(last / first, 3) if first and last else None, "windows": per_window,
              "memory_mib": {"first": rss[0] if rss else None, "after_warmup": warm[0] if warm else None,
                             "last": rss[-1] if rss else None, "peak": max(rss) if rss else None},
              "memory_samples": samples,
              # the load generator shares the machine with the server (and whatever else runs there)
              "loadavg_before": [round(v, 2) for v in load_before],
              "loadavg_after": [round(v, 2) for v in os.getloadavg()]}
    (out / "soak.json").write_text(json.dumps(record, indent=1) + "\n")
    text = render(record)
    (out / "soak.md").write_text(text)
    print(text)
    return 1 if record["failures"] else 0


def cli(argv: Sequence[str] | None = None) -> int:
    """:func:`main`, with anoncodec's errors (no export, busy port...) as one line and status 2."""
    from anoncodec.errors import AnoncodecError

    try:
        return main(argv)
    except AnoncodecError as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
