"""``anoncodec serve``: run a model repository on the local tritonserver until Ctrl-C.

Flag defaults are :class:`~anoncodec.config.ServeConfig`'s.
"""

from __future__ import annotations

import argparse
import json

from anoncodec.cli.options import defaults_of
from anoncodec.config import ADMIN_PROTOCOLS, ServeConfig

__all__ = ["add_serve_arguments", "run_serve"]


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    d = defaults_of(ServeConfig)
    parser.add_argument("--repository", default=d["repository"],
                        help="model repository written by `anoncodec export`")
    parser.add_argument("--host", default=d["host"],
                        help="address to bind (0.0.0.0 accepts cameras on other machines)")
    parser.add_argument("--grpc-port", type=int, default=d["grpc_port"], help="gRPC port")
    parser.add_argument("--http-port", type=int, default=d["http_port"], help="HTTP port")
    parser.add_argument("--metrics-port", type=int, default=d["metrics_port"], help="Prometheus metrics port")
    parser.add_argument("--startup-timeout", type=float, default=d["startup_timeout"],
                        help="seconds to wait for every model to be ready")
    parser.add_argument("--log-file", help="tritonserver log (default: a temporary file, printed)")
    parser.add_argument("--log-verbose", type=int, default=d["log_verbose"], help="tritonserver --log-verbose level")
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
                          help="comma-separated Triton protocols the key protects (default: "
                          f"{','.join(ADMIN_PROTOCOLS)})")
    security.add_argument("--admin-header", default=d["admin_header"], help="header that carries the admin key")


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
