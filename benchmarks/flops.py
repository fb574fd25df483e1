"""How far from the CPU's limit: GFLOPs per 640x480 frame of each model, the GFLOP/s it reaches.

    .venv/bin/python benchmarks/flops.py [--checkpoint NAME] [--repeats 20] [--threads 0]

For the codec's encoder and decoder (exported from ``--checkpoint``), the person detectors
(fall-yolov8s, and the served SSD-MobileNetV2 when its ONNX copy from
``tools/ssd_to_onnx.py`` is in ``.cache/models/``: serving runs the same graph on OpenCV DNN,
so its row times ONNX Runtime on the copy, which resizes to 300x300 inside and takes its
shapes from one run), CenterFace (the guard) and YOLO11n-pose: multiply-accumulates of ``Conv``,
``ConvTranspose``, ``MatMul`` and ``Gemm`` counted from each ONNX graph's own shapes
(:mod:`anoncodec.evaluation.flops`; element-wise work is not counted), the
median ONNX Runtime time of one run, and the GFLOP/s that makes. The CPU's limit is given
twice: the theoretical fp32 peak (cores x clock x 32 FLOPs per cycle for one AVX-512 FMA
unit, x 64 for two; half that with AVX2 only; the clock and flags are /proc/cpuinfo's) and
a measured one (numpy's float32 GEMM on 2048x2048 matrices). Run it with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/flops.py` from a source checkout
    sys.path.insert(0, str(REPO))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from anoncodec.cli.checkpoints import checkpoint_help

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help=checkpoint_help())
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--repeats", type=int, default=20, help="timed runs per model (median reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: one per core)")
    p.add_argument("--ssd-onnx", default=str(REPO / ".cache" / "models" / "ssd_mobilenet_v2_coco.onnx"),
                   help="the SSD's ONNX copy (tools/ssd_to_onnx.py); left out when missing")
    p.add_argument("--skip", action="append", default=[], choices=["pose", "centerface", "detector", "ssd"],
                   help="leave a model out (repeatable), e.g. when its package is not installed")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "flops.json"))
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p.parse_args(argv)


def cpu_peaks(cores: int) -> dict[str, float | None]:
    """Theoretical fp32 GFLOP/s (one and two FMA units of the widest vectors the CPU has:
    AVX-512, 16 floats, or AVX2, 8) and numpy's measured GEMM rate."""
    import numpy as np

    from anoncodec.evaluation.latency import cpuinfo

    mhz = cpuinfo("cpu MHz")
    flags = (cpuinfo("flags") or "").split()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    a @ a  # warm up the BLAS threads
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    ghz = None if mhz is None else float(mhz) / 1000
    return {"cores": cores, "clock_ghz": ghz, "vector": {16: "AVX-512", 8: "AVX2", 4: "SSE"}[lanes],
            "peak_gflops_1fma": None if ghz is None else cores * ghz * 2 * lanes,
            "peak_gflops_2fma": None if ghz is None else cores * ghz * 4 * lanes,
            "numpy_sgemm_gflops": 2 * 2048**3 / best / 1e9}


def _models(args: argparse.Namespace, tmp: Path) -> list[tuple[str, Path, dict[str, tuple[int, ...]], str]]:
    """``(name, onnx path, input shapes, what the input is)`` for every measured model."""
    import onnx

    from anoncodec.codec import load_codec
    from anoncodec.codec.onnx_export import export_codec
    from anoncodec.weights import resolve_checkpoint

    h, w = args.height, args.width
    model = load_codec(resolve_checkpoint(args.checkpoint))
    exported = export_codec(model, tmp)
    f = model.downsampling
    hp, wp = -(-h // f) * f, -(-w // f) * f  # padded to the downsampling factor, as the codec does
    enc_in = onnx.load(str(exported.encoder)).graph.input[0].name
    dec_in = onnx.load(str(exported.decoder)).graph.input[0].name
    out = [("encoder", exported.encoder, {enc_in: (1, 3, hp, wp)}, f"{wp}x{hp} frame"),
           ("decoder", exported.decoder, {dec_in: (1, model.config.M, hp // f, wp // f)},
            f"{model.config.M}x{hp // f}x{wp // f} latent")]
    if "detector" not in args.skip:
        from anoncodec.detectors.person import default_person_model_path

        path = default_person_model_path()
        name = onnx.load(str(path)).graph.input[0].name
        out.append(("fall-yolov8s (served before issue 11)", path, {name: (1, 3, 640, 640)}, "640x640 letterbox"))
    if "ssd" not in args.skip and Path(args.ssd_onnx).is_file():
        name = onnx.load(str(args.ssd_onnx)).graph.input[0].name
        out.append(("SSD-MobileNetV2 (served)", Path(args.ssd_onnx), {name: (1, h, w, 3)},
                    f"{w}x{h} frame, 300x300 inside"))
    if "centerface" not in args.skip:
        from anoncodec.detectors.face import _dynamic_centerface_bytes, default_face_model_path

        path = tmp / "centerface.onnx"
        path.write_bytes(_dynamic_centerface_bytes(default_face_model_path()))
        name = onnx.load(str(path)).graph.input[0].name
        out.append(("CenterFace (guard)", path, {name: (1, 3, -(-h // 32) * 32, -(-w // 32) * 32)},
                    f"{w}x{h} frame, padded to 32"))
    if "pose" not in args.skip:
        from anoncodec.detectors.pose import pose_onnx_path

        path = pose_onnx_path(imgsz=640)
        name = onnx.load(str(path)).graph.input[0].name
        out.append(("YOLO11n-pose (--guard-pose)", path, {name: (1, 3, 640, 640)}, "640x640 letterbox"))
    return out


def _random_input(onnx_type: str, shape: tuple[int, ...]):
    """A fixed random input of ``shape``: uint8 images for graphs that take them (the SSD), else float32."""
    import numpy as np

    rng = np.random.default_rng(0)
    if onnx_type == "tensor(uint8)":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.random(shape, dtype=np.float32)


def run(args: argparse.Namespace, command: str) -> int:

    from anoncodec.detectors._onnx import ort_session
    from anoncodec.evaluation import environment, time_call, write_record
    from anoncodec.evaluation.flops import graph_cost

    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, shapes, what in _models(args, Path(tmp)):
            session = ort_session(path, None, args.threads or None)
            feed = {i.name: _random_input(i.type, shapes[i.name]) for i in session.get_inputs()}
            cost = graph_cost(path, shapes, feed)
            stats = time_call(lambda s=session, f=feed: s.run(None, f), args.warmup, args.repeats)
            rows.append({"model": name, "input": what, "gflops": round(cost.gflops, 3),
                         "by_op_gmacs": {k: round(v / 1e9, 3) for k, v in cost.by_op.items()},
                         "uncounted_ops": cost.uncounted, "median_ms": round(stats.median_ms, 2),
                         "gflops_per_s": round(cost.gflops / (stats.median_ms / 1000), 1)})
    peaks = cpu_peaks(cores)
    print(f"{'model':30s} {'input':28s} {'GFLOPs':>7s} {'ms':>7s} {'GFLOP/s':>8s}")
    for r in rows:
        print(f"{r['model']:30s} {r['input']:28s} {r['gflops']:7.2f} {r['median_ms']:7.1f} {r['gflops_per_s']:8.1f}")
    one, two = peaks["peak_gflops_1fma"], peaks["peak_gflops_2fma"]
    print(f"CPU: {cores} cores at {peaks['clock_ghz']} GHz: fp32 peak {one} (1 FMA unit) / {two} (2) GFLOP/s; "
          f"numpy sgemm reaches {peaks['numpy_sgemm_gflops']:.1f}")
    write_record({"benchmark": "flops", "command": command, "environment": environment(),
                  "frame": f"{args.width}x{args.height}", "threads": args.threads, "models": rows,
                  "cpu": peaks}, args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from anoncodec.evaluation.script import script_main

    return script_main("benchmarks/flops.py", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
