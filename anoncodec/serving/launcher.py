"""Run the model repository on the ``tritonserver`` binary of the ``nvidia-pytriton`` wheel.

Stdlib + anoncodec's errors/config, :mod:`anoncodec.serving.triton_install` (to find the
binary and check the repository's files) and :mod:`anoncodec.serving.host`; never torch.
The wheel ships Triton 2.51 with only the python
backend (no ONNX Runtime/TensorRT backends), so ONNX stages must be exported with
``--backend python`` to run here (docs/ARCHITECTURE.md, "Environment notes"):

- binary ``site-packages/pytriton/tritonserver/bin/tritonserver``, shared libraries in
  ``site-packages/nvidia_pytriton.libs`` (``LD_LIBRARY_PATH``);
- a backend folder ``python/`` with ``libtriton_python.so``,
  ``triton_python_backend_utils.py`` and the ``triton_python_backend_stub`` built for this
  Python version (the launcher links them into a temporary folder);
- the stub runs in isolated mode and ignores ``PYTHONPATH``, so the launcher exports
  ``$ANONCODEC_SYS_PATH`` (this interpreter's site-packages and the source tree) and each
  ``model.py`` adds it to ``sys.path``.

Security options of :class:`~anoncodec.config.ServeConfig` map to Triton's flags: TLS
(``--grpc-use-ssl``, ``--grpc-server-cert/key``; client certificates with
``--grpc-use-ssl-mutual`` and ``--grpc-root-cert``) and an admin key
(``--grpc-restricted-protocol``/``--http-restricted-api``). The key is read from a file,
passed on tritonserver's command line (Triton offers no other way) and never logged. A
server killed with :meth:`TritonServer.kill` leaves its python-backend shared memory
(``/dev/shm``, it may hold the last frames) behind; the launcher removes it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import site
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from anoncodec.config import ServeConfig, is_loopback
from anoncodec.errors import ConfigError, ServerUnavailableError
from anoncodec.serving.host import free_ports, port_in_use
from anoncodec.serving.host import shm_regions as _shm_regions
from anoncodec.serving.python_model import SYS_PATH_ENV
from anoncodec.serving.triton_install import (
    TritonInstall,
    build_backend_dir,
    check_repository,
    find_tritonserver,
)

# The install lookup, the repository check and the host helpers live in triton_install and
# host; they stay importable from here (tests patch check_repository and read _shm_regions).
__all__ = ["TritonInstall", "find_tritonserver", "build_backend_dir", "check_repository", "free_ports",
           "port_in_use", "TritonServer", "DEFAULT_METRICS_CONFIG", "read_admin_key"]

logger = logging.getLogger(__name__)

# Triton's --metrics-config settings: summaries give per-model p50/p90/p95/p99 latencies
# (nv_inference_request_summary_us{quantile=...} and friends) that monitoring/ relies on.
DEFAULT_METRICS_CONFIG: tuple[str, ...] = ("summary_latencies=true",)


_ADMIN_KEY = re.compile(r"[A-Za-z0-9_-]{16,}")


def read_admin_key(path: str | Path) -> str:
    """The admin key in ``path`` (one line; surrounding whitespace is ignored).

    Raises:
        ConfigError: the file is missing, or the key is shorter than 16 characters or uses
            other characters than ``A-Za-z0-9_-``.
    """
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the admin key file {str(path)!r} ({exc}); create it, e.g. "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(32))' > admin.key`") from exc
    if not _ADMIN_KEY.fullmatch(key):
        raise ConfigError(f"the admin key in {str(path)!r} ({len(key)} characters) must be at least 16 "
                          "characters of A-Za-z0-9_- ; generate one with "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if hasattr(os, "getuid") and Path(path).stat().st_mode & 0o077:
        logger.warning("admin key file %s is readable by other users; chmod 600 it", path)
    return key


def _search_path() -> str:
    import anoncodec

    folders = [str(Path(anoncodec.__file__).resolve().parents[1])]
    folders += [p for p in site.getsitepackages() if Path(p).is_dir()]
    return os.pathsep.join(dict.fromkeys(folders))


class TritonServer:
    """A ``tritonserver`` process serving one model repository on the CPU.

    Args:
        config: repository, address, ports, startup timeout and log level.
        log_file: where the server's output goes (default: a temporary file).
        metrics_config: ``setting=value`` items passed as ``--metrics-config`` (default:
            :data:`DEFAULT_METRICS_CONFIG`; ``()`` passes none).

    Example:
        >>> with TritonServer(ServeConfig(repository="model_repository")) as server:
        ...     print(server.grpc_url)
    """

    def __init__(self, config: ServeConfig = ServeConfig(), log_file: str | Path | None = None,
                 metrics_config: Sequence[str] | None = None) -> None:
        self.config = config
        self.metrics_config = tuple(DEFAULT_METRICS_CONFIG if metrics_config is None else metrics_config)
        bad = [item for item in self.metrics_config if "=" not in item]
        if bad:
            raise ConfigError(f"metrics_config items {bad}; expected setting=value, e.g. summary_latencies=true")
        self.install = find_tritonserver()
        self.repository = check_repository(config.repository).resolve()
        self._workdir = Path(tempfile.mkdtemp(prefix="anoncodec-triton-"))
        self.log_file = Path(log_file) if log_file else self._workdir / "tritonserver.log"
        self.process: subprocess.Popen | None = None
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            value = getattr(config, name)
            if value is not None and not Path(value).is_file():
                raise ConfigError(f"{name}={value!r} is not a file; pass an existing PEM file "
                                  f"(--{name.replace('_', '-')})")
        self._admin_key = read_admin_key(config.admin_key_file) if config.admin_key_file else None
        self._shm: set[str] = set()
        self._starts = 0

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host

    @property
    def grpc_url(self) -> str:
        return f"{self._client_host}:{self.config.grpc_port}"

    @property
    def http_url(self) -> str:
        host = self.config.http_host or self.config.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.config.http_port}"

    @property
    def tls(self) -> bool:
        """Whether the gRPC endpoint speaks TLS only."""
        return self.config.tls_cert is not None

    def admin_headers(self, protocol: str = "grpc") -> dict[str, str]:
        """Headers that unlock the admin protocols (``{}`` without an admin key).

        Args:
            protocol: ``"grpc"`` (for ``tritonclient.grpc`` calls' ``headers=``) or ``"http"``.
        """
        if self._admin_key is None:
            return {}
        name = self.config.admin_header
        return {f"triton-grpc-protocol-{name}" if protocol == "grpc" else name: self._admin_key}

    def _security_args(self) -> list[str]:
        c, args = self.config, []
        if c.tls_cert is not None:
            args += ["--grpc-use-ssl=true", f"--grpc-server-cert={Path(c.tls_cert).resolve()}",
                     f"--grpc-server-key={Path(c.tls_key).resolve()}"]
        if c.tls_client_ca is not None:
            args += ["--grpc-use-ssl-mutual=true", f"--grpc-root-cert={Path(c.tls_client_ca).resolve()}"]
        if self._admin_key is not None:
            group = f"{','.join(c.admin_protocols)}:{c.admin_header}={self._admin_key}"
            args += [f"--grpc-restricted-protocol={group}", f"--http-restricted-api={group}"]
        return args

    def _redacted(self, command: list[str]) -> str:
        text = " ".join(command)
        return text.replace(self._admin_key, "***") if self._admin_key else text

    @property
    def metrics_url(self) -> str:
        return f"http://{self._client_host}:{self.config.metrics_port}/metrics"

    def command(self) -> list[str]:
        c = self.config
        backends = build_backend_dir(self.install, self._workdir / "backends")
        return [
            str(self.install.binary), f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            f"--grpc-address={c.host}", f"--grpc-port={c.grpc_port}",
            f"--http-address={c.http_host or c.host}", f"--http-port={c.http_port}",
            f"--metrics-address={c.host}", f"--metrics-port={c.metrics_port}",
            "--allow-metrics=true", "--allow-gpu-metrics=false",
            *(f"--metrics-config={item}" for item in self.metrics_config),
            "--strict-readiness=true", "--exit-on-error=true", "--exit-timeout-secs=10",
            # frames and detector inputs are a few MB: grow the shared memory in big steps
            "--backend-config=python,shm-default-byte-size=16777216",
            "--backend-config=python,shm-growth-byte-size=16777216",
            f"--log-verbose={c.log_verbose}",
            *self._security_args(),
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [str(self.install.lib_dir)] + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
        env["LD_LIBRARY_PATH"] = ":".join(libs)
        env[SYS_PATH_ENV] = _search_path()
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def start(self) -> TritonServer:
        """Start the server and wait until every model is ready.

        Raises:
            ConfigError: a port is already in use.
            ServerUnavailableError: the server exited or was not ready within the timeout
                (the message ends with the last lines of its log).
        """
        if self.process is not None:
            raise ServerUnavailableError("this TritonServer was already started")
        c = self.config
        for name, port in (("--grpc-port", c.grpc_port), ("--http-port", c.http_port),
                           ("--metrics-port", c.metrics_port)):
            if port_in_use(c.host, port):
                raise ConfigError(f"port {port} on {c.host} is already in use (another tritonserver?); "
                                  f"stop it or choose another with {name} (a stopped server frees its "
                                  "ports after ~8 s)")
        command = self.command()
        logger.info("starting %s", self._redacted(command))
        if not is_loopback(c.host):
            if not self.tls:
                logger.warning("gRPC on %s without TLS: frames and packets cross the network in plain text "
                               "(see SECURITY.md; --tls-cert/--tls-key)", c.host)
            if self._admin_key is None:
                logger.warning("admin endpoints (model control, statistics, trace, logging) on %s need no key; "
                               "pass --admin-key-file", c.host)
        self._starts += 1
        with open(self.log_file, "wb" if self._starts == 1 else "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.environment(),
                                            start_new_session=True)
        try:
            self.wait_ready(c.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the server log."""
        try:
            with open(self.log_file, errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except OSError:
            return ""

    def is_ready(self) -> bool:
        """Whether ``/v2/health/ready`` answers 200."""
        headers = self.admin_headers("http") if "health" in self.config.admin_protocols else {}
        request = urllib.request.Request(f"{self.http_url}/v2/health/ready", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        """Poll readiness until ``timeout`` seconds have passed or the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServerUnavailableError(f"tritonserver exited with status {code} while loading "
                                             f"{self.repository} (log {self.log_file}):\n{self.log_tail()}")
            if self.is_ready():
                self._shm |= _shm_regions(self.process.pid)
                logger.info("tritonserver ready: grpc %s, http %s", self.grpc_url, self.http_url)
                return
            time.sleep(0.5)
        raise ServerUnavailableError(f"tritonserver was not ready after {timeout:.0f} s (log {self.log_file}):\n"
                                     f"{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the server, wait for it (SIGKILL after ``timeout``); returns its exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            self._shm |= _shm_regions(process.pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("tritonserver (pid %d) ignored SIGTERM for %.0f s; killing it", process.pid, timeout)
                process.kill()
                process.wait()
        logger.info("tritonserver stopped (status %s)", process.returncode)
        self._remove_shm()
        return process.returncode

    def kill(self) -> int | None:
        """SIGKILL the server and its python-backend stubs at once (a crash, for fault drills).

        The ports are free again right away; :meth:`start` may be called again. Shared
        memory the killed processes leave in ``/dev/shm`` is removed.
        """
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            self._shm |= _shm_regions(process.pid)
            try:
                os.killpg(process.pid, signal.SIGKILL)  # start_new_session: its own group
            except ProcessLookupError:
                pass
            process.wait()
        logger.info("tritonserver killed (status %s)", process.returncode)
        self._remove_shm()
        return process.returncode

    def _remove_shm(self) -> None:
        left = [path for path in self._shm if os.path.exists(path)]
        for path in left:
            try:
                os.unlink(path)
            except OSError as exc:
                logger.warning("cannot remove %s left by tritonserver: %s", path, exc)
        if left:
            logger.info("removed %d python-backend shared memory region(s) left by tritonserver", len(left))
        self._shm.clear()

    def close(self) -> None:
        """Stop the server and remove the temporary backend folder (and default log)."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> TritonServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.close()
