"""``anoncodec camera``: stream a video file, image folder, webcam or RTSP/HTTP URL to Triton.

Prints the run's summary as one JSON line. Imports the client inside ``run`` (no torch,
ever; ``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import json

_DEFAULT_REPO = "model_repository"


def _bounded(convert, lower: float, inclusive: bool, what: str):
    """An argparse ``type`` that converts with ``convert`` and checks ``value >= lower`` (or ``>``)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if not (value >= lower if inclusive else value > lower):  # also refuses NaN
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int = _bounded(int, 1, True, "a positive integer")
_positive_float = _bounded(float, 0, False, "a positive number")
_non_negative_int = _bounded(int, 0, True, "an integer >= 0")
_non_negative_float = _bounded(float, 0, True, "a number >= 0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True,
                        help="video file, folder of images (sorted by name), image, webcam index (0, 1, ...) "
                        "or stream URL (rtsp://, http://)")
    parser.add_argument("--url", default="localhost:8001", help="Triton gRPC address host:port")
    parser.add_argument("--mode", default="frames", choices=["frames", "packets"],
                        help="frames: send raw RGB frames to the anonymize_frame ensemble (for cameras that "
                        "cannot encode; raw frames cross the network); packets: encode here with ONNX Runtime "
                        "and send only the anonymized bitstream to analyze_bitstream")
    parser.add_argument("--export-dir", default=_DEFAULT_REPO,
                        help="packets mode: the camera encoder, either the model repository `anoncodec export` "
                        "wrote (encoder/1/model.onnx, quantize/1/tables.npz) or a folder with encoder.onnx + "
                        "tables.npz; must be the same weights the server decodes with")
    parser.add_argument("--max-in-flight", type=_positive_int, default=4,
                        help="frames sent but not yet delivered, at most (results come back in frame order)")
    parser.add_argument("--buffer-size", type=_non_negative_int, default=16,
                        help="frames read but not yet sent, at most: they wait for an in-flight slot or, after "
                        "the server became unreachable (crash, restart), until it is back; kept in memory only "
                        "(frames mode: H*W*3 bytes each, packets mode: one packet each)")
    parser.add_argument("--when-full", default="block", choices=["block", "drop-newest", "drop-oldest", "drop"],
                        help="when --buffer-size frames wait: block (stop reading; every frame is sent), "
                        "drop-newest (skip the new frame; 'drop' is an alias) or drop-oldest (evict the oldest "
                        "waiting frame, keep the newest); dropped frames are counted (frames_dropped)")
    parser.add_argument("--outage-timeout", type=_non_negative_float, default=120.0,
                        help="seconds to hold frames for a server that answered before and became unreachable; "
                        "then they count as failed (0: no waiting, frames fail after --retries)")
    parser.add_argument("--retries", type=int, default=3,
                        help="retries per frame while the server is overloaded or too slow (or unreachable "
                        "from the start), with exponential backoff; then the frame counts as failed")
    parser.add_argument("--backoff", type=float, default=0.5,
                        help="seconds before the first retry; doubles per retry up to --backoff-max")
    parser.add_argument("--backoff-max", type=float, default=8.0, help="longest wait between retries, seconds")
    parser.add_argument("--timeout", type=_positive_float, default=60.0,
                        help="deadline of one request, seconds")
    parser.add_argument("--output-video",
                        help="write the anonymized frames returned by the server, with person boxes drawn, "
                        "to this video (.avi: MJPG, .mp4: mp4v); raw frames are never written")
    parser.add_argument("--detections",
                        help="write one JSON line per frame: frame, timestamp, status, boxes (x1,y1,x2,y2), "
                        "scores, bytes_sent, bits, latency_ms (encode + request + retries), wait_ms (waiting in the buffer "
                        "for a slot or the server), attempts, error (why a frame failed or was dropped)")
    parser.add_argument("--metrics-port", type=int,
                        help="serve Prometheus metrics (latency and bytes-per-frame histograms, frames "
                        "sent/failed/dropped, frames buffered/in flight, server outages) on this port while streaming")
    parser.add_argument("--metrics-addr", default="0.0.0.0", help="address the metrics server binds")
    parser.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    parser.add_argument("--fps", type=_positive_float,
                        help="read at most this many frames per second (replay a file as if live)")
    parser.add_argument("--encoder-threads", type=int, default=0,
                        help="packets mode: ONNX Runtime intra-op threads (0: ONNX Runtime's default)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--guard", action=argparse.BooleanOptionalAction, default=None,
                        help="packets mode: guaranteed mode, erase every head CenterFace finds from the latent "
                        "before it leaves the camera (default: on in packets mode; --no-guard turns it off)")
    parser.add_argument("--guard-threshold", type=float, default=0.3, help="CenterFace score for --guard")
    parser.add_argument("--guard-margin", type=int, default=1, help="latent cells --guard erases around each head")
    tls = parser.add_argument_group("TLS", "for a server started with `anoncodec serve --tls-cert` (SECURITY.md)")
    tls.add_argument("--tls", action="store_true",
                     help="connect with TLS; the server certificate must name the host of --url")
    tls.add_argument("--tls-ca", help="PEM CA bundle that signed the server certificate (default: system roots)")
    tls.add_argument("--tls-cert", help="PEM client certificate, for servers that require one (--tls-client-ca)")
    tls.add_argument("--tls-key", help="PEM private key of --tls-cert")


def guard_setting(args: argparse.Namespace) -> bool:
    """``--guard``/``--no-guard`` as given, else on exactly when packets leave the camera."""
    return args.mode == "packets" if args.guard is None else bool(args.guard)


def run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from anoncodec.edge.client import CameraClient, ClientConfig
    from anoncodec.edge.sources import open_source
    from anoncodec.errors import ServerUnavailableError

    config = ClientConfig(
        url=args.url, mode=args.mode, export_dir=args.export_dir, max_in_flight=args.max_in_flight,
        when_full=args.when_full, retries=args.retries, backoff_s=args.backoff, backoff_max_s=args.backoff_max,
        request_timeout_s=args.timeout, output_video=args.output_video, detections=args.detections,
        metrics_port=args.metrics_port, metrics_addr=args.metrics_addr,
        progress=not args.no_progress and sys.stderr.isatty(), encoder_threads=args.encoder_threads,
        buffer_size=args.buffer_size, outage_timeout_s=args.outage_timeout, tls=args.tls, tls_ca=args.tls_ca,
        tls_cert=args.tls_cert, tls_key=args.tls_key,
        guard=guard_setting(args), guard_threshold=args.guard_threshold,
        guard_margin=args.guard_margin,
    )
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
        with open_source(args.source, args.max_frames, args.fps) as source, CameraClient(config) as client:
            summary = client.run(source, stop)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    print(json.dumps(summary.to_dict()), flush=True)
    if summary.frames_ok == 0 and summary.frames_failed > 0:
        raise ServerUnavailableError(f"no frame got through to {args.url} ({summary.frames_failed} failed; last "
                                     f"error: {summary.last_error}); is the server up (`anoncodec serve`) and serving the "
                                     "same model as --export-dir? If it uses TLS, check --tls, --tls-ca and the client "
                                     "certificate (--tls-cert/--tls-key)")
    return 0
