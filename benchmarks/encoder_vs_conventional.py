"""Camera-side cost: our ONNX encoder vs the conventional face detector + blur + JPEG.

Also times the guaranteed mode (``--guard``): our encoder + CenterFace + latent erasure +
entropy coding, i.e. what a camera pays for it per frame.

    .venv/bin/python benchmarks/encoder_vs_conventional.py [--checkpoint CKPT] [--repeats 30]

Both run on the same 640x480 RGB frame on this machine's CPU with ONNX Runtime. Prints a
table and the ratio ours/conventional, writes one JSON record (commit, device, versions).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from anoncodec.cli.checkpoints import checkpoint_help

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help=checkpoint_help())
    p.add_argument("--image", default=str(REPO / "data" / "samples" / "basketball1.png"),
                   help="frame to encode (resized to --width x --height)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--jpeg-quality", type=int, default=75)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: default)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "encoder_vs_conventional.json"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import cv2

    from anoncodec.codec import load_codec
    from anoncodec.codec.onnx_export import export_codec
    from anoncodec.detectors import CenterFaceDetector
    from anoncodec.edge import EdgeEncoder, FaceGuard
    from anoncodec.evaluation import blur_regions, environment, jpeg_encode, time_call, write_record
    from anoncodec.weights import resolve_checkpoint

    frame = cv2.cvtColor(cv2.imread(args.image), cv2.COLOR_BGR2RGB)
    frame = cv2.resize(frame, (args.width, args.height), interpolation=cv2.INTER_AREA)
    checkpoint = resolve_checkpoint(args.checkpoint)
    model = load_codec(checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_codec(model, tmp)
        encoder = EdgeEncoder(exported.encoder, exported.tables, threads=args.threads)
        face = CenterFaceDetector(threads=args.threads or None)
        guarded = EdgeEncoder(exported.encoder, exported.tables, threads=args.threads, guard=FaceGuard(detector=face))

        def conventional() -> bytes:
            return jpeg_encode(blur_regions(frame, face.detect(frame)), args.jpeg_quality)

        timing = {
            "ours_encoder_onnx": time_call(lambda: encoder.analyze(frame), args.warmup, args.repeats),
            "ours_encoder_plus_entropy_coding": time_call(lambda: encoder.encode_bytes(frame), args.warmup,
                                                          args.repeats),
            "centerface_detect": time_call(lambda: face.detect(frame), args.warmup, args.repeats),
            "centerface_blur_jpeg": time_call(conventional, args.warmup, args.repeats),
            "ours_guard_mode": time_call(lambda: guarded.encode_bytes(frame), args.warmup, args.repeats),
        }
        sizes = {"ours_packet_bytes": len(encoder.encode_bytes(frame)), "conventional_jpeg_bytes": len(conventional()),
                 "ours_guard_packet_bytes": len(guarded.encode_bytes(frame)), "guard_heads": guarded.last_guarded}
    ratio = timing["ours_encoder_onnx"].median_ms / timing["centerface_blur_jpeg"].median_ms
    ratio_full = timing["ours_encoder_plus_entropy_coding"].median_ms / timing["centerface_blur_jpeg"].median_ms
    print(f"{'stage':36s} {'median ms':>10s} {'p90 ms':>8s}")
    for name, t in timing.items():
        print(f"{name:36s} {t.median_ms:10.1f} {t.p90_ms:8.1f}")
    print(f"ratio encoder / conventional: {ratio:.2f}  (with entropy coding: {ratio_full:.2f})")
    guard_ratio = timing["ours_guard_mode"].median_ms / timing["centerface_blur_jpeg"].median_ms
    print(f"guaranteed mode / conventional: {guard_ratio:.2f}"
          f"  ({sizes['guard_heads']} heads erased)")
    print(f"bytes: ours {sizes['ours_packet_bytes']} (guaranteed mode {sizes['ours_guard_packet_bytes']}), "
          f"conventional JPEG q{args.jpeg_quality} {sizes['conventional_jpeg_bytes']}")
    record = {
        "benchmark": "encoder_vs_conventional", "input": f"{args.width}x{args.height}", "image": Path(args.image).name,
        "checkpoint": checkpoint.name, "model_id": model.model_id().hex(), "codec": model.config.to_dict(),
        "repeats": args.repeats, "warmup": args.warmup, "threads": args.threads,
        "timing_ms": {k: v.to_dict() for k, v in timing.items()},
        "ratio_encoder_over_conventional": ratio, "ratio_encoder_entropy_over_conventional": ratio_full,
        **sizes, **environment(),
    }
    write_record(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
