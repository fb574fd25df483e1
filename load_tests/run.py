"""Run the Locust step load against Triton and write Locust's CSV/HTML plus a capacity summary.

    .venv/bin/anoncodec export                                    # once: fills model_repository/
    .venv/bin/python load_tests/run.py [--url HOST:PORT | --repository DIR] [--export-dir DIR]
        [--ensembles anonymize_frame,analyze_bitstream] [--separate]
        [--start-users 1 --step-users 1 --max-users 4 --step-seconds 60 --settle-seconds 5]
        [--slo-ms 2500] [--stop-on-breach] [--require-no-failures] [--out load_tests/results]

Without ``--url`` the local ``tritonserver`` (pip ``nvidia-pytriton``) is started on free
ports with ``--repository`` and stopped at the end. ``--separate`` runs the staircase once
per ensemble (capacity of each alone); otherwise both user classes share every step
(Locust splits the users between them, so give at least 2 users per step).

Writes into ``--out``: per run ``<name>_stats.csv``, ``<name>_stats_history.csv``,
``<name>_failures.csv``, ``<name>_exceptions.csv`` and ``<name>.html`` (Locust),
``<name>_requests.csv`` (every request) and ``<name>_run.json``; then ``summary.json``
(every step, the capacity per ensemble, machine and versions) and ``summary.md`` (the
table, also printed). Capacity = the highest req/s of a step whose p95 stays within
``--slo-ms`` with 0 failures (:mod:`anoncodec.qa.loadtest`). Exit status 1 when a Locust run
fails, or with ``--require-no-failures`` when any request failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"

if str(REPO) not in sys.path:  # `python load_tests/run.py` from a source checkout
    sys.path.insert(0, str(REPO))

from anoncodec.contract import ANALYZE_BITSTREAM, ANONYMIZE_FRAME  # noqa: E402

#: ensemble -> the locustfile's user class that calls it
USER_CLASSES = {ANONYMIZE_FRAME.name: "AnonymizeFrameUser", ANALYZE_BITSTREAM.name: "AnalyzeBitstreamUser"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from anoncodec.qa.loadtest import DEFAULT_SLO_MS, add_step_load_arguments

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="gRPC address host:port of a running Triton (default: start the local "
                   "tritonserver with --repository on free ports)")
    p.add_argument("--repository", default=str(REPO / "model_repository"),
                   help="model repository written by `anoncodec export` (served when --url is absent)")
    p.add_argument("--export-dir", help="camera encoder for the packets (default: --repository); must be "
                   "the weights the server decodes with")
    p.add_argument("--ensembles", default=",".join(USER_CLASSES),
                   help=f"comma-separated subset of {','.join(USER_CLASSES)}")
    p.add_argument("--separate", action="store_true", help="one staircase per ensemble instead of both together")
    p.add_argument("--video", default=str(REPO / "data" / "samples" / "vtest_excerpt.avi"),
                   help="clip whose first --frames frames are sent")
    p.add_argument("--frames", type=int, default=8, help="distinct frames/packets, sent round robin")
    add_step_load_arguments(p.add_argument)
    p.add_argument("--slo-ms", type=float, default=DEFAULT_SLO_MS, help="p95 latency objective, ms")
    p.add_argument("--stop-on-breach", action="store_true",
                   help="stop a staircase after the first step over the SLO or with a failure")
    p.add_argument("--require-no-failures", action="store_true", help="exit 1 if any request failed")
    p.add_argument("--request-timeout", type=float, default=60.0, help="gRPC deadline of one request, seconds")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for the local server")
    p.add_argument("--out", default=str(REPO / "load_tests" / "results"), help="output folder")
    args = p.parse_args(argv)
    args.ensembles = [e.strip() for e in args.ensembles.split(",") if e.strip()]
    unknown = sorted(set(args.ensembles) - set(USER_CLASSES))
    if unknown or not args.ensembles:
        p.error(f"--ensembles: unknown {unknown}; expected names from {list(USER_CLASSES)}")
    if args.frames < 1 or args.request_timeout <= 0:
        p.error("--frames must be >= 1 and --request-timeout > 0")
    return args


def step_load(args: argparse.Namespace):
    from anoncodec.qa.loadtest import step_load_from

    return step_load_from(args)


def locust_command(args: argparse.Namespace, url: str, ensembles: Sequence[str], prefix: Path) -> list[str]:
    """The headless Locust command of one staircase, writing its files under ``prefix``."""
    from anoncodec.qa.loadtest import step_load_argv

    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
        "--csv", str(prefix), "--csv-full-history", "--html", f"{prefix}.html", "--only-summary",
        "--loglevel", "WARNING", "--exit-code-on-error", "0", "--stop-timeout", str(int(args.request_timeout)),
        "--video", args.video, "--frames", str(args.frames), "--export-dir", args.export_dir,
        "--request-timeout", str(args.request_timeout),
        *step_load_argv(args), "--slo-ms", str(args.slo_ms),
        "--requests-csv", f"{prefix}_requests.csv", "--run-json", f"{prefix}_run.json",
    ]
    if args.stop_on_breach:
        command.append("--stop-on-breach")
    return command + [USER_CLASSES[e] for e in ensembles]


def run_staircase(args: argparse.Namespace, url: str, ensembles: Sequence[str], name: str):
    """Run Locust once; returns the :class:`~anoncodec.qa.loadtest.CapacityReport` (None if Locust failed)."""
    from anoncodec.qa.loadtest import CapacityReport, read_requests_csv

    out = Path(args.out)
    prefix = out / name
    load = step_load(args)
    command = locust_command(args, url, ensembles, prefix)
    print(f"== {name}: {', '.join(ensembles)} at {url}, users {load.start_users}..{load.max_users} "
          f"(+{load.step_users} every {load.step_s:g} s, {load.duration_s:g} s at most)", flush=True)
    started, load_before = time.monotonic(), os.getloadavg()
    try:
        done = subprocess.run(command, cwd=REPO, timeout=load.duration_s + 2 * args.request_timeout + 180)
    except subprocess.TimeoutExpired:
        print(f"error: Locust did not finish {name} in time", file=sys.stderr)
        return None
    if done.returncode != 0:
        print(f"error: Locust exited with status {done.returncode} for {name}", file=sys.stderr)
        return None
    info = json.loads(Path(f"{prefix}_run.json").read_text())
    records = read_requests_csv(f"{prefix}_requests.csv")
    meta = {"ensembles": list(ensembles), "url": url, "stop_reason": info["stop_reason"],
            "frame_shape": info["frame_shape"], "mean_request_bytes": info["mean_bytes"],
            "wall_s": round(time.monotonic() - started, 1),
            # the load generator shares the machine with the server (and whatever else runs there)
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
            "locust_files": sorted(p.name for p in out.glob(f"{name}*"))}
    return CapacityReport.build(records, load, args.slo_ms, ensembles, info["until_s"], meta)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.export_dir = args.export_dir or args.repository
    step_load(args)  # refuse a bad staircase before starting anything
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server = None
    if args.url is None:
        from anoncodec.config import ServeConfig
        from anoncodec.serving.launcher import TritonServer, free_ports

        grpc_port, http_port, metrics_port = free_ports(3)
        config = ServeConfig(repository=args.repository, grpc_port=grpc_port, http_port=http_port,
                             metrics_port=metrics_port, startup_timeout=args.startup_timeout)
        server = TritonServer(config, log_file=out / "tritonserver.log")
        server.start()
        args.url = server.grpc_url
    runs = {}
    try:
        plan = [(e, [e]) for e in args.ensembles] if args.separate else [("mixed", args.ensembles)]
        for name, ensembles in plan:
            runs[name] = run_staircase(args, args.url, ensembles, name)
    finally:
        if server is not None:
            server.close()
    from anoncodec.evaluation.latency import environment
    from anoncodec.qa.loadtest import render_table

    record = {"kind": "locust_capacity", "slo_ms": args.slo_ms, "server": "local" if server else args.url,
              **environment(), "runs": {k: (None if v is None else v.to_dict()) for k, v in runs.items()}}
    (out / "summary.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Capacity (Locust step load, SLO p95 <= {args.slo_ms:.0f} ms)", "",
             f"machine: {record['device']}, {record['cores']} cores; commit {record['commit'][:12]}", ""]
    for name, report in runs.items():
        lines += [f"## {name}", ""]
        lines += ["Locust failed; see its output above.", ""] if report is None else [report.markdown()]
    capacity = [(name, e, r) for name, rep in runs.items() if rep for e, r in rep.capacity.items()]
    lines += ["## Capacity", "", render_table([r for _, _, r in capacity if r is not None], args.slo_ms), ""]
    (out / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out / 'summary.md'}, {out / 'summary.json'} and Locust's CSV/HTML in {out}")
    if any(report is None for report in runs.values()):
        return 1
    if args.require_no_failures and any(report.failures for report in runs.values()):
        print("error: some requests failed (see the failures column)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
