"""Throwaway TLS certificates for tests and for trying ``anoncodec serve --tls-cert`` locally.

Stdlib only; runs the ``openssl`` command line tool. Makes a private CA, a server
certificate for the given host names/IPs and client certificates for cameras (mutual
TLS), all EC P-256 keys valid for a few days. Production certificates come from your
own PKI; these keys are written unencrypted.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anoncodec.errors import ConfigError, MissingDependencyError

__all__ = ["TlsFiles", "throwaway_certificates"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files written by :func:`throwaway_certificates`.

    Attributes:
        ca: the CA certificate (clients verify the server with it; the server verifies
            client certificates with it).
        server_cert, server_key: for ``--tls-cert``/``--tls-key``.
        client_cert, client_key: for the camera's ``--tls-cert``/``--tls-key``.
    """

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(args: list[str], cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise MissingDependencyError("the openssl command is not installed; install it "
                                     "(apt-get install openssl) to make throwaway certificates")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"openssl {args[0]} failed ({done.returncode}): {done.stderr.strip()[-400:]}")


def _new_key_and_request(cwd: Path, name: str, subject: str) -> None:
    _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject], cwd)


def _sign(cwd: Path, name: str, extensions: str, days: int) -> None:
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
              "-out", f"{name}.pem", "-days", str(days), "-extfile", f"{name}.ext"], cwd)
    (cwd / f"{name}.csr").unlink()
    (cwd / f"{name}.ext").unlink()


def throwaway_certificates(folder: str | Path, hosts: Sequence[str] = ("localhost", "127.0.0.1"),
                           client: str = "camera", days: int = 2) -> TlsFiles:
    """Write a CA, a server certificate for ``hosts`` and one client certificate into ``folder``.

    Args:
        folder: created if needed; gets ``ca.pem``, ``server.pem``/``server.key``,
            ``client.pem``/``client.key`` (and the CA's key, ``ca.key``).
        hosts: DNS names and IP addresses the server certificate is valid for (a camera
            dialing ``10.0.0.5:8001`` needs ``10.0.0.5`` here).
        client: common name of the client certificate.
        days: validity.

    Raises:
        MissingDependencyError: ``openssl`` is not installed.
        ConfigError: ``hosts`` is empty or openssl failed.
    """
    if not hosts:
        raise ConfigError("throwaway_certificates needs at least one host name or IP for the server certificate")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days), "-subj", "/CN=anoncodec throwaway CA"],
             out)
    names = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            names.append(f"IP:{host}")
        except ValueError:
            names.append(f"DNS:{host}")
    _new_key_and_request(out, "server", f"/CN={hosts[0]}")
    _sign(out, "server", f"subjectAltName={','.join(names)}\nextendedKeyUsage=serverAuth\n", days)
    _new_key_and_request(out, "client", f"/CN={client}")
    _sign(out, "client", "extendedKeyUsage=clientAuth\n", days)
    for key in out.glob("*.key"):
        key.chmod(0o600)
    logger.info("throwaway certificates for %s in %s", ", ".join(hosts), out)
    return TlsFiles(ca=out / "ca.pem", server_cert=out / "server.pem", server_key=out / "server.key",
                    client_cert=out / "client.pem", client_key=out / "client.key")
