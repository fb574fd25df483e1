"""Nightly fuzz: malformed packets against the parser/entropy decoder, malformed requests
against the served ensembles.

    .venv/bin/anoncodec export                    # once: fills model_repository/
    .venv/bin/python fuzz/nightly.py [--repository DIR] [--cases 20000] [--served-cases 1000]
        [--seed 0] [--url HOST:PORT] [--out fuzz/results/nightly.json]

(``make fuzz`` does both.) Two runs, logic in :mod:`anoncodec.qa` (``fuzz_*``):

1. in process: ``--cases`` mutated packets (random bytes, truncations, bit flips with and
   without a fixed CRC, boundary header values, garbage payloads, huge declared frames,
   foreign model ids, ...) through the server's own packet path (parse, model id, frame
   limits, entropy decoding) with the repository's tables; each must decode or raise
   ``AnoncodecError``, within ``--case-timeout`` seconds;
2. served: a local tritonserver on free ports (or ``--url``) gets one 4096x4096 frame and
   ``--served-cases`` requests to both ensembles (mutated packets, wrong dtypes/ranks/
   channels, zero-size, oversized and lying shapes, malformed BYTES framing, missing and
   unknown inputs), after a warm-up that starts with the largest valid frame and packet;
   each must be answered ``INVALID_ARGUMENT`` (or, for a packet that still
   decodes, a well-formed result), never ``INTERNAL`` or a hang; every ``--check-every``
   cases the server must be ready and answer valid requests; the RSS of tritonserver and
   its python stubs is sampled after a warm-up and must not grow by more than
   ``--max-rss-growth`` MiB; the server must then exit cleanly.

Prints a summary, writes one JSON record (commit, versions, per-kind outcomes, rejection
reasons, failures, memory) and exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fuzz/nightly.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--repository", default=str(REPO / "model_repository"),
                   help="model repository written by `anoncodec export` (its tables, limits and encoder)")
    p.add_argument("--cases", type=int, default=20_000, help="in-process packet cases (at least 10,000 nightly)")
    p.add_argument("--served-cases", type=int, default=1000, help="requests sent to the server (0: skip it)")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed replays the same cases)")
    p.add_argument("--case-timeout", type=float, default=5.0, help="longest accepted in-process case, seconds")
    p.add_argument("--request-timeout", type=float, default=60.0,
                   help="client deadline per served request, seconds; a request over it counts as a hang")
    p.add_argument("--check-every", type=int, default=25, help="served cases between readiness checks")
    p.add_argument("--warmup", type=int, default=50, help="served cases run before the first memory sample")
    p.add_argument("--max-rss-growth", type=float, default=64.0,
                   help="largest accepted growth of the server's RSS (tritonserver + python stubs), MiB")
    p.add_argument("--huge", type=int, default=4096, help="side of the one huge zero frame sent (0: none)")
    p.add_argument("--url", help="fuzz this running server instead of starting one (no memory check)")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for the local server")
    p.add_argument("--out", default=str(REPO / "fuzz" / "results" / "nightly.json"), help="JSON record")
    return p.parse_args(argv)


def _raise_interrupt(*_) -> None:
    raise KeyboardInterrupt


def _line(name: str, report) -> str:
    totals = report.totals()
    return (f"{name}: {report.cases} cases in {report.elapsed_s:.1f} s: accepted {totals['accepted']}, "
            f"rejected {totals['rejected']}, failures {report.failure_count} (slowest {report.slowest_s:.3f} s: "
            f"{report.slowest_kind})")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import logging

    import numpy as np

    from anoncodec.errors import AnoncodecError
    from anoncodec.evaluation.latency import environment, write_record
    from anoncodec.qa.fuzz_packets import PacketMutator, PacketTarget, fuzz_decoder
    from anoncodec.qa.fuzz_requests import ServedCase, TensorSpec, served_cases
    from anoncodec.qa.fuzz_server import fuzz_server

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        target = PacketTarget.from_repository(args.repository)
    except AnoncodecError as exc:
        print(f"error: {exc}\nRun `.venv/bin/anoncodec export --repository {args.repository}` first "
              "(or `make fuzz`).", file=sys.stderr)
        return 2
    seeds = target.seed_packets(seed=args.seed)
    record: dict = {"benchmark": "nightly_fuzz", **environment(), "repository": str(Path(args.repository).resolve()),
                    "seed": args.seed, "limits": [target.limits.max_height, target.limits.max_width],
                    "codec": target.codec.to_dict()}

    decoder = fuzz_decoder(target, PacketMutator(seeds, target.codec, target.limits, args.seed).cases(args.cases),
                           args.case_timeout)
    print(_line("decoder fuzz (in process)", decoder), flush=True)
    record["decoder"] = decoder.to_dict()
    failed = not decoder.ok

    if args.served_cases > 0:
        mutator = PacketMutator(seeds, target.codec, target.limits, args.seed + 1)
        huge = (args.huge, args.huge) if args.huge else None
        cases = served_cases(mutator, args.served_cases + args.warmup, target.limits, args.seed, huge,
                             target.largest_packet(args.seed))
        good = [ServedCase("good-frame", "anonymize_frame",
                           (TensorSpec("FRAME", "UINT8", np.full((64, 64, 3), 128, np.uint8)),), "accept"),
                ServedCase("good-packet", "analyze_bitstream",
                           (TensorSpec("PACKET", "BYTES", np.array([seeds[2]], dtype=object)),), "accept")]
        served, exit_status = _run_served(args, cases, good, fuzz_server)
        if served is None:
            return 2
        print(_line("server fuzz (gRPC)", served), flush=True)
        memory = served.memory
        if "before_mib" in memory and "after_mib" in memory:
            growth = memory["after_mib"] - memory["before_mib"]
            memory["growth_mib"] = round(growth, 1)
            print(f"tritonserver + stubs RSS: {memory['before_mib']:.1f} -> {memory['after_mib']:.1f} MiB "
                  f"(peak {memory['peak_mib']:.1f}; growth {growth:+.1f}, limit {args.max_rss_growth:g})")
            failed |= growth > args.max_rss_growth
        record["server"] = served.to_dict() | {"exit_status": exit_status}
        failed |= not served.ok or exit_status not in (0, None)
        if exit_status not in (0, None):
            print(f"tritonserver exited with status {exit_status} after fuzzing", file=sys.stderr)

    for report in (decoder, *([served] if args.served_cases > 0 else [])):
        for failure in report.failures[:10]:
            print(f"FAILURE {report.target} {failure['kind']}: {failure['detail'][:300]}", file=sys.stderr)
    record["ok"] = not failed
    write_record(record, args.out)
    return 1 if failed else 0


def _run_served(args, cases, good, fuzz_server):
    """Start a server (unless --url), fuzz it, stop it; returns (report, exit status)."""
    from anoncodec.config import ServeConfig
    from anoncodec.serving.launcher import TritonServer, free_ports

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    server = None
    try:
        if args.url:
            return fuzz_server(args.url, cases, good, timeout_s=args.request_timeout, check_every=args.check_every,
                               warmup=args.warmup), None
        grpc_port, http_port, metrics_port = free_ports(3)
        server = TritonServer(ServeConfig(repository=args.repository, grpc_port=grpc_port, http_port=http_port,
                                          metrics_port=metrics_port, startup_timeout=args.startup_timeout))
        print(f"starting tritonserver on {server.grpc_url} (log {server.log_file}) ...", flush=True)
        start = time.monotonic()
        server.start()
        print(f"ready after {time.monotonic() - start:.0f} s; sending {len(cases)} requests", flush=True)
        report = fuzz_server(server.grpc_url, cases, good, pid=server.process.pid, timeout_s=args.request_timeout,
                             check_every=args.check_every, warmup=args.warmup)
        status = server.stop()
        return report, status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return None, None
    finally:
        if server is not None:
            server.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
