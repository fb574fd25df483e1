"""The local ``tritonserver``'s settings (:class:`ServeConfig`), security options included.

Stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from anoncodec.config.serializable import _check, _Serializable
from anoncodec.contract import DEFAULT_REPOSITORY

__all__ = ["ADMIN_PROTOCOLS", "RESTRICTABLE_PROTOCOLS", "ServeConfig", "is_loopback"]


RESTRICTABLE_PROTOCOLS = ("health", "metadata", "inference", "shared-memory", "model-config",
                          "model-repository", "statistics", "trace", "logging")
#: what ``admin_key_file`` protects by default: everything but health, metadata and inference
ADMIN_PROTOCOLS = ("model-repository", "model-config", "shared-memory", "statistics", "trace", "logging")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``127.x.x.x``, ``::1``, ``localhost``)."""
    return host == "localhost" or host == "::1" or host.startswith("127.")


@dataclass(frozen=True)
class ServeConfig(_Serializable):
    """How ``anoncodec serve`` runs the local ``tritonserver`` (pip ``nvidia-pytriton``).

    Args:
        repository: the model repository folder (filled by ``anoncodec export``).
        host: address the three endpoints bind to (``0.0.0.0`` to accept remote cameras).
        grpc_port: gRPC endpoint (cameras, ``tritonclient.grpc``).
        http_port: HTTP/REST endpoint (also used to poll readiness).
        metrics_port: Prometheus ``/metrics`` endpoint.
        startup_timeout: seconds to wait for every model to be ready.
        log_verbose: tritonserver ``--log-verbose`` level (0: off).
        http_host: address of the HTTP endpoint (None: ``host``). Triton has no TLS for
            HTTP, so with TLS on a non-loopback ``host`` it must be a loopback address.
        tls_cert: PEM server certificate; with ``tls_key`` the gRPC endpoint speaks TLS only.
        tls_key: PEM private key of ``tls_cert``.
        tls_client_ca: PEM CA bundle; when set, gRPC clients must present a certificate
            it signed (mutual TLS). Needs ``tls_cert``.
        admin_key_file: file holding a secret (one line, >= 16 of ``A-Za-z0-9_-``); when
            set, the ``admin_protocols`` of gRPC and HTTP answer only requests that carry
            it in the ``admin_header`` header (gRPC: ``triton-grpc-protocol-<header>``).
        admin_protocols: the Triton protocols/APIs that need the key (default: model
            control, configuration, statistics, trace, logging, shared memory).
        admin_header: name of that header (lowercase letters, digits, ``-``).
    """

    repository: str = DEFAULT_REPOSITORY
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    startup_timeout: float = 180.0
    log_verbose: int = 0
    http_host: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    admin_key_file: str | None = None
    admin_protocols: tuple[str, ...] = ADMIN_PROTOCOLS
    admin_header: str = "admin-key"

    def __post_init__(self) -> None:
        _check(bool(self.repository), "serve.repository must name a model repository folder")
        ports = (self.grpc_port, self.http_port, self.metrics_port)
        for name, port in zip(("grpc_port", "http_port", "metrics_port"), ports):
            _check(isinstance(port, int) and 1 <= port <= 65535, f"serve.{name}={port!r}; expected 1..65535")
        _check(len(set(ports)) == 3, f"serve ports must differ, got grpc/http/metrics {ports}")
        _check(self.startup_timeout > 0, f"serve.startup_timeout={self.startup_timeout!r}; expected > 0")
        _check(isinstance(self.log_verbose, int) and self.log_verbose >= 0,
               f"serve.log_verbose={self.log_verbose!r}; expected an integer >= 0")
        _check((self.tls_cert is None) == (self.tls_key is None),
               f"serve.tls_cert={self.tls_cert!r}, serve.tls_key={self.tls_key!r}; give both (TLS) or neither")
        _check(self.tls_client_ca is None or self.tls_cert is not None,
               "serve.tls_client_ca (client certificates) needs serve.tls_cert and serve.tls_key too")
        if self.tls_cert is not None and not is_loopback(self.host):
            http = self.http_host or self.host
            _check(is_loopback(http),
                   f"serve.http_host={http!r}: with TLS on a non-loopback host ({self.host!r}) the HTTP "
                   "endpoint, which Triton cannot encrypt, would accept frames in plain text; set "
                   "http_host (--http-host) to 127.0.0.1, or put a TLS proxy in front of it")
        unknown = sorted(set(self.admin_protocols) - set(RESTRICTABLE_PROTOCOLS))
        _check(not unknown and len(set(self.admin_protocols)) == len(self.admin_protocols),
               f"serve.admin_protocols={list(self.admin_protocols)}: unknown or repeated {unknown}; "
               f"expected distinct names from {list(RESTRICTABLE_PROTOCOLS)}")
        _check(self.admin_key_file is None or len(self.admin_protocols) > 0,
               "serve.admin_key_file is set but serve.admin_protocols is empty; name what the key protects")
        header = self.admin_header
        header_ok = isinstance(header, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", header) is not None
        _check(header_ok,
               f"serve.admin_header={self.admin_header!r}; expected lowercase letters, digits and '-'")
