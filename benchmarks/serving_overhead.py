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

from anoncodec.contract import ENSEMBLE_NAMES

REPO = Path(__file__).resolve().parents[1]
STATS_FIELDS = ("queue", "compute_input", "compute_infer", "compute_output", "success")


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

    capture = cv2.VideoCapture(str(video))
    frames = []
    try:
        while len(frames) < count:
            ok, bgr = capture.read()
            if not ok:
                break
            bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise SystemExit(f"error: cannot read frames from {video}")
    return frames


def missing_model_files(repository: Path) -> list[Path]:
    """Files `anoncodec export` generates that ``repository`` lacks."""
    from anoncodec.serving.runtime import missing_files

    stages = ("frame_preprocess", "encoder", "quantize", "entropy_decode", "decoder", "detector")
    return [p for s in stages for p in missing_files(repository / s / "1", s)]


def config_parameters(config: Path) -> dict[str, str]:
    """The string ``parameters`` of a ``config.pbtxt`` (what Triton hands the python stage)."""
    from anoncodec.serving.model_config import read_model_config

    return read_model_config(config).parameters


# --- (b) the same stages in this process ----------------------------------------------------

class DirectPipeline:
    """Both ensembles as plain calls of the repository's stage objects.

    One instance and one lock per stage (Triton runs one instance of each model), and the
    time spent inside each stage is summed for the per-stage breakdown.
    """

    STAGES = ("frame_preprocess", "encoder", "quantize", "entropy_decode", "decoder",
              "decoder_postprocess", "detector", "detector_postprocess")

    def __init__(self, repository: Path) -> None:
        from anoncodec.serving.runtime import load_stage

        self.stages = {name: load_stage(name, repository / name / "1",
                                        config_parameters(repository / name / "config.pbtxt"))
                       for name in self.STAGES}
        self.locks = {name: threading.Lock() for name in self.STAGES}
        self._tally_lock = threading.Lock()
        self.reset_tally()

    def reset_tally(self) -> None:
        with self._tally_lock:
            self.tally = {name: [0, 0] for name in self.STAGES}  # calls, ns

    def stage_ms(self) -> dict[str, dict[str, float]]:
        with self._tally_lock:
            return {name: {"calls": calls, "mean_ms": ns / calls / 1e6}
                    for name, (calls, ns) in self.tally.items() if calls}

    def _run(self, name: str, **inputs: Any) -> dict[str, Any]:
        with self.locks[name]:
            t0 = time.perf_counter_ns()
            out = self.stages[name].run(inputs)
            elapsed = time.perf_counter_ns() - t0
        with self._tally_lock:
            self.tally[name][0] += 1
            self.tally[name][1] += elapsed
        return out

    def _detect(self, y_hat, size) -> dict[str, Any]:
        x_hat = self._run("decoder", y_hat=y_hat)["x_hat"]
        rec = self._run("decoder_postprocess", x_hat=x_hat, size=size)
        output = self._run("detector", images=rec["images"])["output"]
        det = self._run("detector_postprocess", output=output, letterbox=rec["letterbox"])
        return {"ANONYMIZED": rec["frame"], "BOXES": det["boxes"], "SCORES": det["scores"]}

    def anonymize_frame(self, frame_rgb) -> dict[str, Any]:
        pre = self._run("frame_preprocess", frame=frame_rgb)
        y = self._run("encoder", x=pre["x"])["y"]
        quant = self._run("quantize", y=y)
        return {**self._detect(quant["y_hat"], pre["size"]), "BITS": quant["bits"]}

    def analyze_bitstream(self, packet: bytes) -> dict[str, Any]:
        import numpy as np

        dec = self._run("entropy_decode", packet=np.array([packet], dtype=object))
        return self._detect(dec["y_hat"], dec["size"])

    def bits(self, frame_rgb) -> int:
        """BITS of one frame (preprocess, encoder, quantize only)."""
        pre = self.stages["frame_preprocess"].run({"frame": frame_rgb})
        y = self.stages["encoder"].run({"x": pre["x"]})["y"]
        return int(self.stages["quantize"].run({"y": y})["bits"][0])

    def close(self) -> None:
        for stage in self.stages.values():
            stage.close()


# --- (a) the ensembles over gRPC ------------------------------------------------------------

class TritonCall:
    """One worker's ``tritonclient.grpc`` client for one ensemble (a client per thread)."""

    def __init__(self, url: str, ensemble: str, timeout_s: float) -> None:
        import tritonclient.grpc as grpcclient

        from anoncodec.contract import ensemble as ensemble_spec
        from anoncodec.edge.request import requested_outputs

        self.ensemble, self.timeout_s = ensemble, timeout_s
        self.client = grpcclient.InferenceServerClient(url)
        self.names = ensemble_spec(ensemble).output_names
        self.outputs = requested_outputs(ensemble)

    def __call__(self, payload: Any) -> dict[str, Any]:
        from anoncodec.edge.request import request_inputs

        inputs = request_inputs(self.ensemble, payload)
        result = self.client.infer(self.ensemble, inputs, outputs=self.outputs, client_timeout=self.timeout_s)
        return {n: result.as_numpy(n) for n in self.names}

    def close(self) -> None:
        self.client.close()


def stats_snapshot(client) -> dict[str, dict[str, int]]:
    """``{model: {count, <field>_ns}}`` from Triton's statistics API (cumulative)."""
    data = client.get_inference_statistics(as_json=True)
    snapshot: dict[str, dict[str, int]] = {}
    for model in data.get("model_stats", []):
        stats = model.get("inference_stats", {})
        entry = snapshot.setdefault(model["name"], {"count": 0, **{f"{f}_ns": 0 for f in STATS_FIELDS}})
        entry["count"] += int(stats.get("success", {}).get("count", 0))
        for field in STATS_FIELDS:
            entry[f"{field}_ns"] += int(stats.get(field, {}).get("ns", 0))
    return snapshot


def stats_delta(before: dict, after: dict) -> dict[str, dict[str, float]]:
    """Per model that ran in between: calls and mean ms per call of each statistics field."""
    delta = {}
    for name, end in after.items():
        start = before.get(name, {})
        calls = end["count"] - start.get("count", 0)
        if calls <= 0:
            continue
        entry: dict[str, float] = {"calls": calls}
        for field in STATS_FIELDS:
            ns = end[f"{field}_ns"] - start.get(f"{field}_ns", 0)
            entry[f"{'total' if field == 'success' else field}_ms"] = ns / calls / 1e6
        delta[name] = entry
    return delta


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
