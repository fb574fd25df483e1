"""``anoncodec camera``: stream a video file, image folder, webcam or RTSP/HTTP URL to Triton.

Packets mode (the default, :data:`anoncodec.contract.DEFAULT_MODE`) encodes on the camera,
so faces never leave it; frames mode sends raw frames and says so with a warning. Flag
defaults are :class:`~anoncodec.edge.client.ClientConfig`'s. Prints the run's summary as
one JSON line. Never imports torch.
"""

from __future__ import annotations

import argparse
import json
import logging

from anoncodec.cli.guard_options import add_guard_arguments, guard_config
from anoncodec.cli.options import (
    defaults_of,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from anoncodec.contract import DEFAULT_MODE, MODES
from anoncodec.edge.client_config import ENCODING_MODES, WHEN_FULL, ClientConfig, guard_applies
from anoncodec.replenish import ReplenishConfig

__all__ = ["add_arguments", "client_config", "guard_setting", "run"]

logger = logging.getLogger(__name__)

FRAMES_WARNING = ("--mode frames: raw frames, faces included, leave the camera and cross the network to %s; "
                  "the default --mode packets anonymizes them on the camera")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = defaults_of(ClientConfig)
    parser.add_argument("--source", required=True,
                        help="video file, folder of images (sorted by name), image, webcam index (0, 1, ...) "
                        "or stream URL (rtsp://, http://)")
    parser.add_argument("--url", default=d["url"], help="Triton gRPC address host:port")
    parser.add_argument("--mode", default=DEFAULT_MODE, choices=list(MODES),
                        help="packets: encode here with ONNX Runtime and send only the anonymized bitstream "
                        "to analyze_bitstream (faces never leave the camera); frames: send raw RGB frames to "
                        "the anonymize_frame ensemble (for cameras that cannot encode; raw frames, faces "
                        "included, cross the network); stream: encode here as a video sequence (keyframes, then "
                        "only the latent cells that changed) sent in order to analyze_stream, which keeps the "
                        "camera's last latent (one frame in flight; after a refused or lost packet or a server "
                        "restart the camera starts again from a keyframe)")
    parser.add_argument("--export-dir", default=d["export_dir"],
                        help="packets mode: the camera encoder, either the model repository `anoncodec export` "
                        "wrote (encoder/1/model.onnx, quantize/1/tables.npz) or a folder with encoder.onnx + "
                        "tables.npz; must be the same weights the server decodes with")
    parser.add_argument("--max-in-flight", type=positive_int, default=d["max_in_flight"],
                        help="frames sent but not yet delivered, at most (results come back in frame order)")
    parser.add_argument("--buffer-size", type=non_negative_int, default=d["buffer_size"],
                        help="frames read but not yet sent, at most: they wait for an in-flight slot or, after "
                        "the server became unreachable (crash, restart), until it is back; kept in memory only "
                        "(frames mode: H*W*3 bytes each, packets mode: one packet each)")
    parser.add_argument("--when-full", default=d["when_full"], choices=list(WHEN_FULL),
                        help="when --buffer-size frames wait: block (stop reading; every frame is sent), "
                        "drop-newest (skip the new frame; 'drop' is an alias) or drop-oldest (evict the oldest "
                        "waiting frame, keep the newest); dropped frames are counted (frames_dropped)")
    parser.add_argument("--outage-timeout", type=non_negative_float, default=d["outage_timeout_s"],
                        help="seconds to hold frames for a server that answered before and became unreachable; "
                        "then they count as failed (0: no waiting, frames fail after --retries)")
    parser.add_argument("--retries", type=int, default=d["retries"],
                        help="retries per frame while the server is overloaded or too slow (or unreachable "
                        "from the start), with exponential backoff; then the frame counts as failed")
    parser.add_argument("--backoff", type=float, default=d["backoff_s"],
                        help="seconds before the first retry; doubles per retry up to --backoff-max")
    parser.add_argument("--backoff-max", type=float, default=d["backoff_max_s"],
                        help="longest wait between retries, seconds")
    parser.add_argument("--timeout", type=positive_float, default=d["request_timeout_s"],
                        help="deadline of one request, seconds")
    parser.add_argument("--output-video",
                        help="write the anonymized frames returned by the server, with person boxes drawn, "
                        "to this video (.avi: MJPG, .mp4: mp4v); raw frames are never written")
    parser.add_argument("--detections",
                        help="write one JSON line per frame: frame, timestamp, status, boxes (x1,y1,x2,y2), "
                        "scores, bytes_sent, bits, latency_ms (encode + request + retries), "
                        "wait_ms (waiting in the buffer "
                        "for a slot or the server), attempts, error (why a frame failed or was dropped); "
                        "in --mode stream: "
                        "frame, timestamp, status, frame_type (key/delta), bytes_sent, resyncs, boxes, scores, "
                        "latency_ms")
    parser.add_argument("--metrics-port", type=int,
                        help="serve Prometheus metrics (latency and bytes-per-frame histograms, frames "
                        "sent/failed/dropped, frames buffered/in flight, server outages) on this port while streaming")
    parser.add_argument("--metrics-addr", default=d["metrics_addr"], help="address the metrics server binds")
    parser.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    parser.add_argument("--fps", type=positive_float,
                        help="read at most this many frames per second (replay a file as if live)")
    parser.add_argument("--encoder-threads", type=int, default=d["encoder_threads"],
                        help="packets mode: ONNX Runtime intra-op threads (0: ONNX Runtime's default)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    video = parser.add_argument_group("stream mode", "conditional replenishment (--mode stream)")
    replenish = ReplenishConfig()
    video.add_argument("--keyframe-interval", type=positive_int, default=replenish.keyframe_interval,
                       help="frames from one keyframe to the next (1: every frame is a keyframe)")
    video.add_argument("--replenish-threshold", type=non_negative_float, default=replenish.threshold,
                       help="a latent cell is sent again when its new symbols lower the squared quantization "
                       "error, averaged over channels, by more than this (0: every changed cell; the frames then "
                       "decode exactly as in packets mode)")
    video.add_argument("--camera-id", type=positive_int,
                       help="this camera's correlation ID on the server, unique per camera (default: random)")
    video.add_argument("--head-hold", type=non_negative_int, default=1,
                       help="frames an erased head cell stays erased after its head was last found, so a head "
                       "the face detector misses in one frame does not slip through")
    add_guard_arguments(parser, None, "packets mode: guaranteed mode, erase every head CenterFace finds from the "
                        "latent before it leaves the camera (default: on in packets mode; --no-guard turns it off)")
    tls = parser.add_argument_group("TLS", "for a server started with `anoncodec serve --tls-cert` (SECURITY.md)")
    tls.add_argument("--tls", action="store_true",
                     help="connect with TLS; the server certificate must name the host of --url")
    tls.add_argument("--tls-ca", help="PEM CA bundle that signed the server certificate (default: system roots)")
    tls.add_argument("--tls-cert", help="PEM client certificate, for servers that require one (--tls-client-ca)")
    tls.add_argument("--tls-key", help="PEM private key of --tls-cert")


def guard_setting(args: argparse.Namespace) -> bool:
    """``--guard``/``--no-guard`` as given, else on exactly when packets leave the camera."""
    return guard_applies(args.mode, args.guard)


def _encoder(args: argparse.Namespace, config: ClientConfig):
    """Packets mode: the camera's :class:`~anoncodec.edge.EdgeEncoder` (with the guard when on),
    built here rather than by the client so that a missing export gets the CLI's message."""
    from anoncodec.edge.client import camera_encoder, find_encoder_files
    from anoncodec.errors import ExportError

    try:
        files = find_encoder_files(args.export_dir)
    except ExportError:
        raise ExportError(f"--mode packets encodes on the camera and needs the encoder that `anoncodec export` "
                          f"writes, but {args.export_dir!r} has none (neither encoder.onnx + tables.npz nor "
                          "encoder/1/model.onnx + quantize/1/tables.npz): pass --export-dir with the server's "
                          "model repository, or run `anoncodec export` first") from None
    return camera_encoder(config, files)


def client_config(args: argparse.Namespace) -> ClientConfig:
    """The :class:`ClientConfig` that parsed ``camera`` flags describe."""
    import sys

    return ClientConfig(
        url=args.url, mode=args.mode, export_dir=args.export_dir, max_in_flight=args.max_in_flight,
        when_full=args.when_full, retries=args.retries, backoff_s=args.backoff, backoff_max_s=args.backoff_max,
        request_timeout_s=args.timeout, output_video=args.output_video, detections=args.detections,
        metrics_port=args.metrics_port, metrics_addr=args.metrics_addr,
        progress=not args.no_progress and sys.stderr.isatty(), encoder_threads=args.encoder_threads,
        buffer_size=args.buffer_size, outage_timeout_s=args.outage_timeout, tls=args.tls, tls_ca=args.tls_ca,
        tls_cert=args.tls_cert, tls_key=args.tls_key,
        guard=args.guard, guard_settings=guard_config(args),
    )


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from anoncodec.edge.client import CameraClient
    from anoncodec.edge.sources import open_source
    from anoncodec.errors import ServerUnavailableError

    config = client_config(args)
    if args.mode == "frames":
        logger.warning(FRAMES_WARNING, args.url)
    encoder = _encoder(args, config) if args.mode in ENCODING_MODES else None
    stop = threading.Event()

    def on_signal(signum, frame):  # first: finish the frames in flight, then summarize; second: abort
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, on_signal)
    try:
        if args.mode == "stream":
            return _run_stream(args, encoder, stop)
        with open_source(args.source, args.max_frames, args.fps) as source, \
                CameraClient(config, encoder=encoder) as client:
            summary = client.run(source, stop)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    print(json.dumps(summary.to_dict()), flush=True)
    if summary.frames_ok == 0 and summary.frames_failed > 0:
        raise ServerUnavailableError(f"no frame got through to {args.url} ({summary.frames_failed} failed; last "
                                     f"error: {summary.last_error}); is the server up (`anoncodec serve`) "
                                     "and serving the "
                                     "same model as --export-dir? If it uses TLS, check --tls, --tls-ca and the client "
                                     "certificate (--tls-cert/--tls-key)")
    return 0


def _run_stream(args: argparse.Namespace, encoder, stop) -> int:
    """``--mode stream``: one sequence to analyze_stream, frames in order; detections as JSON
    lines, the anonymized frames as an annotated video and Prometheus metrics, each on request."""
    import secrets
    import sys

    from anoncodec.edge.metrics import CameraMetrics
    from anoncodec.edge.results import FrameResult
    from anoncodec.edge.sequence import SequenceEncoder, StreamSender, stream_frames
    from anoncodec.edge.sinks import VideoSink
    from anoncodec.edge.sources import open_source
    from anoncodec.errors import ServerUnavailableError, require

    config = ReplenishConfig(keyframe_interval=args.keyframe_interval, threshold=args.replenish_threshold)
    camera_id = args.camera_id or secrets.randbits(62) + 1
    fps = args.fps or 10.0  # the rate the stream is quoted at (and the video written at)
    sequence = SequenceEncoder(encoder, config, guard_hold=args.head_hold)
    sender = StreamSender(args.url, sequence, camera_id, timeout_s=args.timeout, retries=max(0, args.retries))
    metrics = CameraMetrics("stream")
    if args.metrics_port is not None:
        port = metrics.serve(args.metrics_port, args.metrics_addr)
        logger.info("camera metrics on http://%s:%d/metrics", args.metrics_addr, port)
    video = VideoSink(args.output_video, fps) if args.output_video else None
    lines = open(args.detections, "w") if args.detections else None  # noqa: SIM115 - closed below
    tqdm = require("tqdm", "edge").tqdm
    bar = tqdm(total=args.max_frames, disable=args.no_progress or not sys.stderr.isatty(), unit="frame",
               desc="camera stream", leave=False)

    def on_result(frame, result, latency_ms: float) -> None:
        ok = result is not None
        delivered = FrameResult(frame.index, frame.timestamp, "ok" if ok else "failed",
                                bytes_sent=result.bytes_sent if ok else 0,
                                attempts=1 + (result.resyncs if ok else max(0, args.retries)),
                                latency_ms=latency_ms if ok else None)
        if ok:
            delivered.boxes_xyxy, delivered.scores, delivered.anonymized = (
                result.boxes_xyxy, result.scores, result.anonymized)
            metrics.retries.inc(result.resyncs)
        metrics.sent.inc()
        metrics.record(delivered)
        metrics.heads_erased.inc(encoder.last_guarded)
        if video is not None and ok:
            video.write(delivered)
        if lines is not None:
            record = {"frame": frame.index, "timestamp": frame.timestamp, "status": delivered.status}
            if ok:
                record.update(frame_type=result.frame_type, bytes_sent=result.bytes_sent, resyncs=result.resyncs,
                              boxes=result.boxes_xyxy.round(1).tolist(), scores=result.scores.round(4).tolist(),
                              latency_ms=round(latency_ms, 2))
            lines.write(json.dumps(record) + "\n")
        bar.update(1)

    try:
        with open_source(args.source, args.max_frames, args.fps) as source:
            summary = stream_frames(source, sender, on_result, stop)
    finally:
        sender.close()
        bar.close()
        metrics.close()
        for sink in (video, lines):
            if sink is not None:
                sink.close()
    out = summary.to_dict()
    out.update(camera_id=camera_id, fps=fps, kbit_per_s=round(summary.kbit_per_s(fps), 1))
    print(json.dumps(out), flush=True)
    if summary.frames_ok == 0 and summary.frames_failed > 0:
        raise ServerUnavailableError(f"no frame got through to {args.url} ({summary.frames_failed} failed; last "
                                     f"error: {summary.last_error}); is the server up (`anoncodec serve`) and "
                                     "serving the same model as --export-dir?")
    return 0
