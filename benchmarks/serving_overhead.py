"""What Triton costs: both ensembles over gRPC vs the same stages called in one process.

    .venv/bin/anoncodec export                      # once: fills model_repository/
    .venv/bin/python benchmarks/serving_overhead.py [--repository DIR | --url HOST:PORT]
        [--repeats 20] [--warmup 3] [--concurrency 1,2,3,4] [--width 640 --height 480]

Frames come from ``data/samples/vtest_excerpt.avi``, resized to ``--width x --height``.
For each ensemble (``anonymize_frame``: raw FRAME in; ``analyze_bitstream``: a PACKET
encoded on the "camera" with ONNX Runtime) and each concurrency C, C workers each send
``--repeats`` requests back to back (closed loop), and the script measures:

- (a) Triton: ``tritonclient.grpc`` calls to the local ``tritonserver`` (started here on free
  ports and stopped at the end, also on Ctrl-C) or to ``--url``;
- (b) direct: the very stage objects the python-backend models run
  (:mod:`anoncodec.serving.runtime`, built from the same repository files and config
  parameters), chained in this process; each stage has a lock, like Triton's one instance
  per model, so both sides may overlap different stages of different requests;
- (c) overhead of (a) over (b): p50 latency and throughput;
- (d) per-stage means from Triton's statistics API (queue, compute input/infer/output),
  as a delta over each measured run, next to the direct per-stage times;
- (e) bytes per frame on the wire: PACKET (packet mode) vs raw FRAME (frame mode), and the
  mean BITS ``anonymize_frame`` reports.

Latency: p50/p90/p95 in ms per request; throughput: requests finished per second of wall
time. Prints tables and writes one JSON record (commit, device, versions). Single-stream
numbers are concurrency 1; capacity belongs to Locust (``load_tests/``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(REPO))

from anoncodec.contract import STATELESS_ENSEMBLE_NAMES as ENSEMBLE_NAMES  # noqa: E402
from anoncodec.qa.serving_overhead import (  # noqa: E402
    DirectPipeline,
    TritonCall,
    missing_model_files,
    stats_delta,
    stats_snapshot,
)


def _concurrency(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--concurrency {text!r}: expected integers like 1,2,3,4") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--concurrency {text!r}: expected integers >= 1")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repository", default=str(REPO / "model_repository"),
                   help="model repository written by `anoncodec export` (also used for the direct path)")
    p.add_argument("--url", help="gRPC address host:port of a running tritonserver serving --repository "
                   "(default: start the local tritonserver on free ports)")
    p.add_argument("--video", default=str(REPO / "data" / "samples" / "vtest_excerpt.avi"),
                   help="video whose first --frames frames are sent (resized to --width x --height)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--frames", type=int, default=8, help="distinct frames, sent round robin")
    p.add_argument("--repeats", type=int, default=20, help="requests per worker and concurrency")
    p.add_argument("--warmup", type=int, default=3, help="untimed requests per ensemble and path")
    p.add_argument("--concurrency", type=_concurrency, default=[1, 2, 3, 4],
                   help="comma-separated worker counts (default 1,2,3,4)")
    p.add_argument("--ensembles", default=",".join(ENSEMBLE_NAMES),
                   help=f"comma-separated subset of {','.join(ENSEMBLE_NAMES)}")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for the server")
    p.add_argument("--timeout", type=float, default=120.0, help="deadline of one gRPC request, seconds")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serving_overhead.json"))
    args = p.parse_args(argv)
    args.ensembles = [e.strip() for e in args.ensembles.split(",") if e.strip()]
    unknown = sorted(set(args.ensembles) - set(ENSEMBLE_NAMES))
    if unknown or not args.ensembles:
        p.error(f"--ensembles: unknown {unknown}; expected names from {ENSEMBLE_NAMES}")
    if min(args.width, args.height, args.frames, args.repeats) < 1 or args.warmup < 0:
        p.error("--width, --height, --frames and --repeats must be >= 1, --warmup >= 0")
    return args


# --- inputs ----------------------------------------------------------------------------------

def load_frames(video: str | Path, count: int, width: int, height: int) -> list:
    """The first ``count`` frames of ``video`` as uint8 ``[height, width, 3]`` RGB."""
    import cv2

    from anoncodec.errors import DatasetError
    from anoncodec.frames import read_frames

    try:
        frames = read_frames(video, max_frames=count)
    except DatasetError as exc:
        raise SystemExit(f"error: cannot read frames from {video}: {exc}") from None
    return [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]


# --- load -------------------------------------------------------------------------------------

def percentiles(latencies_ms: Sequence[float], wall_s: float) -> dict[str, float]:
    import numpy as np

    a = np.asarray(latencies_ms, dtype=np.float64)
    return {"p50_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)),
            "p95_ms": float(np.percentile(a, 95)), "mean_ms": float(a.mean()), "requests": int(a.size),
            "wall_s": wall_s, "throughput_rps": float(a.size / wall_s)}


def run_load(make_call: Callable[[], tuple[Callable[[Any], Any], Callable[[], None]]],
             payloads: Sequence[Any], concurrency: int, repeats: int) -> dict[str, float]:
    """``concurrency`` threads, each with its own ``make_call()``, send ``repeats`` requests.

    The clock starts when every worker is ready (clients connected), so connection setup is
    not timed; each request's latency and the wall time of the whole run are recorded.
    """
    ready = threading.Barrier(concurrency + 1, timeout=120)

    def worker(index: int) -> list[float]:
        try:
            call, close = make_call()
        except BaseException:
            ready.abort()
            raise
        try:
            ready.wait()
            latencies = []
            for k in range(repeats):
                payload = payloads[(index * repeats + k) % len(payloads)]
                t0 = time.perf_counter()
                call(payload)
                latencies.append((time.perf_counter() - t0) * 1000)
            return latencies
        finally:
            close()

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker, i) for i in range(concurrency)]
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            for f in futures:
                f.result()  # re-raises the worker's error
            raise
        t0 = time.perf_counter()
        latencies = [ms for f in futures for ms in f.result()]
        wall = time.perf_counter() - t0
    return percentiles(latencies, wall)


# --- server -----------------------------------------------------------------------------------

def _rank(order: list[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- report -----------------------------------------------------------------------------------

def print_report(record: dict) -> None:
    print(f"serving overhead: {record['input']} frames, repository {record['repository']}, "
          f"server {record['server']}")
    print(f"{'ensemble':18s} {'conc':>4s} | {'triton p50':>10s} {'p95':>7s} {'req/s':>6s} | "
          f"{'direct p50':>10s} {'p95':>7s} {'req/s':>6s} | {'ovh p50 %':>9s} {'ovh req/s %':>11s}")
    for ensemble, runs in record["results"].items():
        for conc, r in runs.items():
            t, d, o = r["triton"], r["direct"], r["overhead"]
            print(f"{ensemble:18s} {conc:>4s} | {t['p50_ms']:10.1f} {t['p95_ms']:7.1f} {t['throughput_rps']:6.2f} | "
                  f"{d['p50_ms']:10.1f} {d['p95_ms']:7.1f} {d['throughput_rps']:6.2f} | "
                  f"{o['latency_p50_pct']:9.1f} {o['throughput_pct']:11.1f}")
    print("\nper stage, mean ms per call over all measured runs (Triton statistics API | direct)")
    print(f"{'ensemble':18s} {'model':21s} {'calls':>6s} {'queue':>7s} {'c_in':>6s} {'infer':>7s} "
          f"{'c_out':>6s} {'total':>7s} | {'direct':>7s}")
    for ensemble, models in record["stage_breakdown"].items():
        direct = record["direct_stage_ms"].get(ensemble, {})
        for name, s in models.items():
            d = direct.get(name, {}).get("mean_ms")
            print(f"{ensemble:18s} {name:21s} {s['calls']:6d} {s['queue_ms']:7.2f} {s['compute_input_ms']:6.2f} "
                  f"{s['compute_infer_ms']:7.2f} {s['compute_output_ms']:6.2f} {s['total_ms']:7.2f} | "
                  f"{'' if d is None else f'{d:7.2f}':>7s}")
    b = record["bytes_per_frame"]
    print(f"\nbytes per frame on the wire (tensor payload): frame mode FRAME {b['frame_mode_frame_bytes']} B, "
          f"packet mode PACKET {b['packet_mode_packet_bytes_mean']:.0f} B "
          f"({b['frame_over_packet']:.0f}x smaller); mean BITS {b['bits_mean']:.0f} "
          f"(= {b['bits_mean'] / 8:.0f} B of payload + header)")
    print(f"outputs match (Triton vs direct, first frame): {record['outputs_match']}")


def compare_outputs(triton: dict, direct: dict) -> dict[str, Any]:
    import numpy as np

    anon = np.abs(triton["ANONYMIZED"].astype(np.int16) - direct["ANONYMIZED"].astype(np.int16))
    same_n = triton["BOXES"].shape == direct["BOXES"].shape
    box_err = float(np.abs(triton["BOXES"] - direct["BOXES"]).max()) if same_n and direct["BOXES"].size else 0.0
    return {"anonymized_max_abs_diff": int(anon.max()), "boxes": [int(triton["BOXES"].shape[0]),
                                                                  int(direct["BOXES"].shape[0])],
            "boxes_max_abs_diff": box_err}


# --- main -------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    repository = Path(args.repository).resolve()
    if not repository.is_dir() or missing_model_files(repository):
        missing = missing_model_files(repository) if repository.is_dir() else [repository]
        print(f"error: model repository {repository} has no exported model files (missing "
              f"{', '.join(str(p) for p in missing[:3])}{' ...' if len(missing) > 3 else ''}).\n"
              f"Run `.venv/bin/anoncodec export` first (or `.venv/bin/anoncodec export --repository "
              f"{repository}`), or pass --repository.", file=sys.stderr)
        return 2

    import tritonclient.grpc as grpcclient

    from anoncodec.config import ServeConfig
    from anoncodec.edge.encoder import EdgeEncoder, find_encoder_files
    from anoncodec.errors import AnoncodecError
    from anoncodec.evaluation.latency import environment, write_record
    from anoncodec.serving.launcher import TritonServer, free_ports
    from anoncodec.serving.repository import ENSEMBLES

    frames = load_frames(args.video, args.frames, args.width, args.height)
    encoder = EdgeEncoder(*find_encoder_files(repository))
    packets = [encoder.encode_bytes(f) for f in frames]
    payloads = {"anonymize_frame": frames, "analyze_bitstream": packets}
    direct = DirectPipeline(repository)
    bits = [direct.bits(f) for f in frames]
    codec = json.loads((repository / "frame_preprocess" / "1" / "codec.json").read_text())

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    server = None
    try:
        if args.url:
            url, server_name = args.url, f"tritonserver at {args.url}"
        else:
            grpc_port, http_port, metrics_port = free_ports(3)
            config = ServeConfig(repository=str(repository), grpc_port=grpc_port, http_port=http_port,
                                 metrics_port=metrics_port, startup_timeout=args.startup_timeout)
            server = TritonServer(config)
            print(f"starting tritonserver on {server.grpc_url} (log {server.log_file}) ...", flush=True)
            server.start()
            url, server_name = server.grpc_url, f"local tritonserver {server.grpc_url}"
        stats_client = grpcclient.InferenceServerClient(url)
        results: dict[str, dict[str, Any]] = {}
        breakdown: dict[str, dict[str, dict[str, float]]] = {}
        per_run_stats: dict[str, dict[str, Any]] = {}
        direct_stages: dict[str, dict[str, Any]] = {}
        matches = {}
        for ensemble in args.ensembles:
            items = payloads[ensemble]
            direct_fn = getattr(direct, ensemble)
            probe = TritonCall(url, ensemble, args.timeout)
            try:
                matches[ensemble] = compare_outputs(probe(items[0]), direct_fn(items[0]))
                for k in range(args.warmup):
                    probe(items[k % len(items)])
                    direct_fn(items[k % len(items)])
            finally:
                probe.close()

            def triton_call(ensemble=ensemble):
                call = TritonCall(url, ensemble, args.timeout)
                call.client.is_server_ready()  # connect before the clock starts
                return call, call.close

            totals: dict[str, dict[str, float]] = {}
            direct.reset_tally()
            results[ensemble], per_run_stats[ensemble] = {}, {}
            for conc in args.concurrency:
                print(f"{ensemble}: concurrency {conc}, {args.repeats} requests per worker ...", flush=True)
                before = stats_snapshot(stats_client)
                triton = run_load(triton_call, items, conc, args.repeats)
                delta = stats_delta(before, stats_snapshot(stats_client))
                plain = run_load(lambda fn=direct_fn: (fn, lambda: None), items, conc, args.repeats)
                results[ensemble][str(conc)] = {
                    "triton": triton, "direct": plain,
                    "overhead": {
                        "latency_p50_pct": 100 * (triton["p50_ms"] / plain["p50_ms"] - 1),
                        "latency_p95_pct": 100 * (triton["p95_ms"] / plain["p95_ms"] - 1),
                        "throughput_pct": 100 * (plain["throughput_rps"] / triton["throughput_rps"] - 1),
                    },
                }
                per_run_stats[ensemble][str(conc)] = delta
                for name, s in delta.items():  # call-weighted sum over the runs
                    t = totals.setdefault(name, {k: 0.0 for k in s})
                    for k, v in s.items():
                        t[k] += v * (1 if k == "calls" else s["calls"])
            order = [ensemble] + [step[0] for step in ENSEMBLES[ensemble][2]]  # pipeline order
            breakdown[ensemble] = {name: {k: (int(v) if k == "calls" else v / t["calls"]) for k, v in t.items()}
                                   for name, t in sorted(totals.items(), key=lambda kv: _rank(order, kv[0]))}
            direct_stages[ensemble] = direct.stage_ms()
        stats_client.close()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except AnoncodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.close()
        direct.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    packet_sizes = [len(p) for p in packets]
    frame_bytes = int(frames[0].nbytes)
    packet_mean = sum(packet_sizes) / len(packet_sizes)
    record = {
        "benchmark": "serving_overhead", "input": f"{args.width}x{args.height}", "video": Path(args.video).name,
        "frames": len(frames), "repository": str(repository), "server": server_name,
        "model_id": codec.get("model_id"), "downsampling": codec.get("downsampling"),
        "concurrency": args.concurrency, "repeats": args.repeats, "warmup": args.warmup,
        "results": results, "stage_breakdown": breakdown, "stage_stats_per_run": per_run_stats,
        "direct_stage_ms": direct_stages,
        "bytes_per_frame": {
            "frame_mode_frame_bytes": frame_bytes,
            "packet_mode_packet_bytes_mean": packet_mean,
            "packet_mode_packet_bytes_min": min(packet_sizes), "packet_mode_packet_bytes_max": max(packet_sizes),
            "bits_mean": sum(bits) / len(bits),
            "frame_over_packet": frame_bytes / packet_mean,
        },
        "outputs_match": matches, **environment(),
    }
    print()
    print_report(record)
    write_record(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
