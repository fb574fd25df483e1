"""Both ensembles' stage chains on a GPU: throughput and p99 per batch of 1..16 frames.

Here (CPU), once: export a repository whose detector is an ONNX model (the served SSD runs on
OpenCV DNN, CPU only), and bundle it with the code::

    .venv/bin/anoncodec export --repository .gpu-throughput/repo --detector fall-yolov8s \\
        --max-height 480 --max-width 640
    cp data/samples/vtest_excerpt.avi .gpu-throughput/

On the device (its image has CUDA PyTorch; ONNX Runtime must have the CUDA execution
provider, ``onnxruntime-gpu``)::

    run(command="python3 tools/gpu_throughput.py --repository .gpu-throughput/repo "
                "--clip .gpu-throughput/vtest_excerpt.avi --out $OUT", carry=[".gpu-throughput"])

For each ensemble (``anonymize_frame``: frame -> encoder -> quantize -> decoder -> detector;
``analyze_bitstream``: packet -> entropy decode -> decoder -> detector) and each batch size,
the ONNX stages (encoder, decoder, detector) run once on the whole batch with the CUDA
execution provider (``--fp16``: float16 copies made with ``onnxconverter_common`` when it is
installed; the record says which ran), the python stages (pre/post-processing, entropy coding,
NMS) once per frame on the CPU, as Triton's dynamic batcher would chain them. Per batch size:
p50 / p99 of the batch's latency over ``--repeats`` and frames per second. Writes
``gpu_throughput.json`` to ``--out`` (default ``benchmarks/results/``). Never needed by CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ONNX_STAGES = ("encoder", "decoder", "detector")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repository", required=True, help="model repository (anoncodec export --detector fall-yolov8s)")
    p.add_argument("--clip", default=str(ROOT / "data" / "samples" / "vtest_excerpt.avi"))
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--batches", default="1,2,4,8,16", help="batch sizes, comma-separated")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--fp16", action="store_true", help="float16 copies of the ONNX stages")
    p.add_argument("--provider", default="CUDAExecutionProvider", help="ONNX Runtime execution provider")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    return p.parse_args(argv)


def fp16_copy(repository: Path, stage: str, dest: Path) -> Path | None:
    """A float16 copy of the stage's ONNX file (inputs and outputs stay float32), or None
    without ``onnxconverter_common``."""
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError:
        return None
    model = float16.convert_float_to_float16(onnx.load(str(repository / stage / "1" / "model.onnx")),
                                             keep_io_types=True)
    folder = dest / stage / "1"
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    return folder


def load_stages(repository: Path, provider: str, fp16: bool, scratch: Path) -> tuple[dict, dict]:
    """Every stage of both ensembles, the ONNX ones on ``provider``; and what ran (fp16 or not)."""
    from anoncodec.qa.serving_overhead import DirectPipeline, config_parameters
    from anoncodec.serving.runtime import load_stage

    stages, notes = {}, {}
    for name in DirectPipeline.STAGES:
        params = config_parameters(repository / name / "config.pbtxt")
        folder = repository / name / "1"
        if name in ONNX_STAGES:
            params["execution_providers"] = ",".join(dict.fromkeys([provider, "CPUExecutionProvider"]))
            half = fp16_copy(repository, name, scratch) if fp16 else None
            notes[name] = "fp16" if half is not None else "fp32"
            if half is not None:
                folder = half
        stages[name] = load_stage(name, folder, params)
    return stages, notes


def chains(stages: dict):
    """The two ensembles over a batch: ONNX stages batched, python stages per frame."""
    import numpy as np

    def detect(y_hat: np.ndarray, sizes: list[np.ndarray]) -> list[dict]:
        x_hat = stages["decoder"].run({"y_hat": y_hat})["x_hat"]
        recs = [stages["decoder_postprocess"].run({"x_hat": x_hat[i:i + 1], "size": s}) for i, s in enumerate(sizes)]
        images = np.concatenate([r["images"] for r in recs])
        output = stages["detector"].run({"images": images})["output"]
        return [stages["detector_postprocess"].run({"output": output[i:i + 1], "letterbox": r["letterbox"]})
                for i, r in enumerate(recs)]

    def anonymize_frame(frames: list[np.ndarray]) -> list[dict]:
        pres = [stages["frame_preprocess"].run({"frame": f}) for f in frames]
        y = stages["encoder"].run({"x": np.concatenate([p["x"] for p in pres])})["y"]
        quants = [stages["quantize"].run({"y": y[i:i + 1]}) for i in range(len(frames))]
        return detect(np.concatenate([q["y_hat"] for q in quants]), [p["size"] for p in pres])

    def analyze_bitstream(packets: list[bytes]) -> list[dict]:
        decs = [stages["entropy_decode"].run({"packet": np.array([p], dtype=object)}) for p in packets]
        return detect(np.concatenate([d["y_hat"] for d in decs]), [d["size"] for d in decs])

    return {"anonymize_frame": anonymize_frame, "analyze_bitstream": analyze_bitstream}


def main(argv: list[str] | None = None) -> int:
    import tempfile

    import cv2
    import numpy as np

    from anoncodec.edge import EdgeEncoder
    from anoncodec.evaluation.latency import environment
    from anoncodec.frames import read_frames

    args = parse_args(argv)
    repository = Path(args.repository)
    frames = [cv2.resize(f, (args.width, args.height), interpolation=cv2.INTER_AREA)
              for f in read_frames(args.clip, max_frames=16)]
    camera = EdgeEncoder(repository / "encoder" / "1" / "model.onnx", repository / "quantize" / "1" / "tables.npz")
    packets = [camera.encode_bytes(f) for f in frames]
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        stages, notes = load_stages(repository, args.provider, args.fp16, Path(scratch))
        calls = chains(stages)
        for ensemble, payload in (("anonymize_frame", frames), ("analyze_bitstream", packets)):
            for batch in batches:
                items = [payload[i % len(payload)] for i in range(batch)]
                for _ in range(args.warmup):
                    calls[ensemble](items)
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    calls[ensemble](items)
                    times.append(time.perf_counter() - start)
                p50, p99 = (float(np.percentile(times, q)) * 1000 for q in (50, 99))
                rows.append({"ensemble": ensemble, "batch": batch, "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                             "frames_per_s": round(batch / float(np.median(times)), 1)})
                print(f"{ensemble:18s} batch {batch:2d}: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
                      f"{rows[-1]['frames_per_s']:7.1f} frames/s", flush=True)
    import onnxruntime

    record = {"benchmark": "gpu_throughput", "command": " ".join(["python", "tools/gpu_throughput.py", *sys.argv[1:]]),
              **environment(), "provider": args.provider, "available_providers": onnxruntime.get_available_providers(),
              "precision": notes, "frame": f"{args.width}x{args.height}", "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_throughput.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out / 'gpu_throughput.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
