"""``anoncodec demo``: the codec on the bundled samples, then the served pipeline.

Part 1 (codec): for each sample frame, the real packet (bytes, bpp), the decoded image
as PNG, PSNR overall and outside the head boxes, and faces that MTCNN and CenterFace find
before and after. Head boxes of the originals come from the same auto-annotation as
training (CenterFace faces -> heads, plus heads derived from YOLO person boxes).

Part 2 (serving, skipped with ``--no-serving``): export the checkpoint into a model
repository under ``--out``, start the local tritonserver, stream the bundled clip in
``frames`` and ``packets`` mode with the camera client (annotated anonymized video and
detections per mode), summarize latency and bytes per frame, stop the server.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anoncodec.cli.checkpoints import checkpoint_help

DEFAULT_SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
VIDEO_FRAMES = (0, 30, 59)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="folder for decoded images, packets and report")
    parser.add_argument("--samples", default=str(DEFAULT_SAMPLES),
                        help="folder with messi5.jpg, basketball1.png and vtest_excerpt.avi")
    parser.add_argument("--checkpoint", help=checkpoint_help())
    parser.add_argument("--no-serving", action="store_true",
                        help="skip part 2 (local Triton + camera client streaming the clip)")
    parser.add_argument("--max-frames", type=int, default=0,
                        help="frames of the clip to stream per mode (0: all 60)")


def _frames(samples: Path):
    from anoncodec.errors import DatasetError
    from anoncodec.frames import open_source

    frames = []
    for name in ("messi5.jpg", "basketball1.png", "vtest_excerpt.avi"):
        if not (samples / name).is_file():
            raise DatasetError(f"sample {samples / name} is missing; pass --samples DIR")
    for name in ("messi5.jpg", "basketball1.png"):
        with open_source(samples / name) as image:
            frames += [(Path(name).stem, frame.frame_rgb) for frame in image]
    with open_source(samples / "vtest_excerpt.avi") as video:
        frames += [(f"vtest_{f.index:03d}", f.frame_rgb) for f in video if f.index in VIDEO_FRAMES]
    return frames


def _matched(after, before, iou: float = 0.3) -> int:
    """Detections in ``after`` that overlap a detection of ``before`` (same face found again)."""
    from anoncodec.detectors import box_iou

    if len(after) == 0 or len(before) == 0:
        return 0
    return sum(int((box_iou(box[:4], before[:, :4]) >= iou).any()) for box in after)


def _upscale(frame, factor: int = 2):
    import cv2

    return cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from anoncodec.codec import load_codec
    from anoncodec.codec.images import frame_to_tensor, tensor_to_frame
    from anoncodec.data.footage import heads_from_detections
    from anoncodec.detectors import CenterFaceDetector, YoloPersonDetector
    from anoncodec.evaluation.mtcnn import MtcnnFaceDetector
    from anoncodec.packet import pack, unpack
    from anoncodec.roi.metrics import box_mask, masked_mse, psnr
    from anoncodec.weights import resolve_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = resolve_checkpoint(args.checkpoint)
    model = load_codec(checkpoint)
    centerface, yolo, mtcnn = CenterFaceDetector(), YoloPersonDetector(), MtcnnFaceDetector()
    rows = []
    for name, frame in tqdm(_frames(Path(args.samples)), desc="demo"):
        h, w = frame.shape[:2]
        data = pack(model.compress(frame_to_tensor(frame)))
        (out / f"{name}.packet").write_bytes(data)
        decoded = tensor_to_frame(model.decompress(unpack(data)))
        Image.fromarray(decoded).save(out / f"{name}_anonymized.png")

        faces_cf, persons = centerface.detect(frame), yolo.detect(frame)
        heads = heads_from_detections(faces_cf, persons, (h, w))
        x, x_hat = frame_to_tensor(frame)[0], frame_to_tensor(decoded)[0]
        mask = box_mask(torch.from_numpy(heads), h, w)
        faces_mt = mtcnn.detect(frame)
        faces_mt_after, faces_cf_after = mtcnn.detect(decoded), centerface.detect(decoded)
        rows.append({
            "image": name, "size": f"{w}x{h}", "bytes": len(data), "bpp": 8 * len(data) / (h * w),
            "psnr": psnr(masked_mse(x_hat, x, torch.ones(h, w, dtype=torch.bool))),
            "psnr_outside_heads": psnr(masked_mse(x_hat, x, ~mask)),
            "heads": len(heads),
            "mtcnn_before": len(faces_mt), "mtcnn_after": len(faces_mt_after),
            "mtcnn_after_same_face": _matched(faces_mt_after, faces_mt),
            "centerface_before": len(faces_cf), "centerface_after": len(faces_cf_after),
            "centerface_after_same_face": _matched(faces_cf_after, faces_cf),
            # surveillance faces (5-15 px) are below the detectors' reach: look again at 2x
            "centerface_x2_before": len(centerface.detect(_upscale(frame))),
            "centerface_x2_after": len(centerface.detect(_upscale(decoded))),
            "persons_before": len(persons), "persons_after": len(yolo.detect(decoded)),
        })
    columns = list(rows[0])
    lines = [f"# anoncodec demo\n\ncheckpoint: `{checkpoint.name}` (model id {model.model_id().hex()})\n",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    totals = {k: int(np.sum([r[k] for r in rows])) for k in columns if k.startswith(("mtcnn", "centerface", "persons"))}
    lines.append("\ntotals: " + ", ".join(f"{k}={v}" for k, v in totals.items()))
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    (out / "metrics.json").write_text(json.dumps({"checkpoint": str(checkpoint), "rows": rows,
                                                  "totals": totals}, indent=2))
    streaming = [] if args.no_serving else _stream_demo(out, checkpoint, Path(args.samples), args.max_frames)
    if streaming:
        cols = ["mode", "frames_ok", "frames_failed", "latency_p50_ms", "latency_p95_ms",
                "mean_bytes_per_frame", "fps", "persons_per_frame"]
        lines = ["\n## Served pipeline (local Triton, CPU), bundled clip\n",
                 "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for row in streaming:
            lines.append("| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
        report += "\n".join(lines) + "\n"
        (out / "report.md").write_text(report)
        (out / "metrics.json").write_text(json.dumps({"checkpoint": str(checkpoint), "rows": rows,
                                                      "totals": totals, "streaming": streaming}, indent=2))
    print(report)
    print(f"wrote {out}/report.md, metrics.json, *_anonymized.png, *.packet"
          + ("" if args.no_serving else ", stream_*.avi, detections_*.jsonl"))
    return 0


def _fmt(value) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _stream_demo(out: Path, checkpoint: Path, samples: Path, max_frames: int) -> list[dict]:
    """Export, serve, stream the clip in both modes with the camera client, stop; one row per mode."""
    import json

    from anoncodec.config import ServeConfig
    from anoncodec.edge.client import CameraClient, ClientConfig
    from anoncodec.edge.sources import open_source
    from anoncodec.serving.export import RepositoryOptions, export_repository
    from anoncodec.serving.launcher import TritonServer, free_ports

    clip = samples / "vtest_excerpt.avi"
    repository = out / "model_repository"
    export_repository(checkpoint, repository, RepositoryOptions(max_height=576, max_width=768))
    ports = free_ports(3)
    config = ServeConfig(repository=str(repository), grpc_port=ports[0], http_port=ports[1], metrics_port=ports[2])
    rows = []
    with TritonServer(config, log_file=out / "tritonserver.log") as server:
        for mode in ("frames", "packets"):
            detections = out / f"detections_{mode}.jsonl"
            client_config = ClientConfig(url=server.grpc_url, mode=mode, export_dir=str(repository),
                                         max_in_flight=2, output_video=str(out / f"stream_{mode}.avi"),
                                         detections=str(detections), progress=True)
            with open_source(str(clip), max_frames or None) as source, CameraClient(client_config) as client:
                summary = client.run(source)
            lines = [json.loads(line) for line in detections.read_text().splitlines()]
            boxes = [len(line.get("boxes", [])) for line in lines if line.get("status") == "ok"]
            rows.append({**summary.to_dict(), "persons_per_frame": sum(boxes) / max(1, len(boxes))})
    return rows
