"""Run the model repository on the ``tritonserver`` binary of the ``nvidia-pytriton`` wheel.

Stdlib + anoncodec's errors/config and :mod:`anoncodec.serving.runtime` (to check the
repository's files); never torch. The wheel ships Triton 2.51 with only the python
backend (no ONNX Runtime/TensorRT backends), so ONNX stages must be exported with
``--backend python`` to run here (docs/ARCHITECTURE.md, serving):

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

import importlib.util
import logging
import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anoncodec.config import ServeConfig, is_loopback
from anoncodec.errors import ConfigError, ExportError, MissingDependencyError, ServerUnavailableError
from anoncodec.serving.model_config import read_model_config
from anoncodec.serving.python_model import SYS_PATH_ENV
from anoncodec.serving.repository import ENSEMBLES, ONNX_STAGES, PYTHON_STAGES
from anoncodec.serving.runtime import missing_files

__all__ = ["TritonInstall", "find_tritonserver", "check_repository", "port_in_use", "TritonServer",
           "DEFAULT_METRICS_CONFIG", "read_admin_key"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install -c constraints.txt 'anoncodec[serve]'` (or `make setup`"
EXPORT_HINT = "run `anoncodec export` to fill it"
# Triton's --metrics-config settings: summaries give per-model p50/p90/p95/p99 latencies
# (nv_inference_request_summary_us{quantile=...} and friends) that monitoring/ relies on.
DEFAULT_METRICS_CONFIG: tuple[str, ...] = ("summary_latencies=true",)


@dataclass(frozen=True)
class TritonInstall:
    """Where the pip ``tritonserver`` and its python backend live.

    Attributes:
        binary: the ``tritonserver`` executable.
        lib_dir: shared libraries it needs (``LD_LIBRARY_PATH``).
        python_backend: folder with ``libtriton_python.so`` and ``triton_python_backend_utils.py``.
        stub: ``triton_python_backend_stub`` for this Python version.
    """

    binary: Path
    lib_dir: Path
    python_backend: Path
    stub: Path


def find_tritonserver() -> TritonInstall:
    """Locate the ``tritonserver`` of the installed ``nvidia-pytriton`` wheel (without importing it).

    Raises:
        MissingDependencyError: the wheel, the binary or the stub for this Python is missing.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"nvidia-pytriton is not installed, so there is no tritonserver; "
                                     f"install it with `{INSTALL_HINT})")
    package = Path(list(spec.submodule_search_locations)[0])
    root = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(
        binary=root / "bin" / "tritonserver",
        lib_dir=package.parent / "nvidia_pytriton.libs",
        python_backend=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
    )
    needed = [install.binary, install.lib_dir, install.python_backend / "libtriton_python.so",
              install.python_backend / "triton_python_backend_utils.py", install.stub]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise MissingDependencyError(f"the nvidia-pytriton install at {package} lacks {missing} "
                                     f"(Python {version}); reinstall it with `{INSTALL_HINT})")
    return install


def build_backend_dir(install: TritonInstall, dest: str | Path) -> Path:
    """Make ``dest/python/`` with the python backend library, utils module and stub; returns ``dest``."""
    folder = Path(dest) / "python"
    folder.mkdir(parents=True, exist_ok=True)
    for source in (install.python_backend / "libtriton_python.so",
                   install.python_backend / "triton_python_backend_utils.py", install.stub):
        target = folder / source.name
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(source.resolve())
    return Path(dest)


def check_repository(repository: str | Path) -> Path:
    """Refuse a model repository the pip ``tritonserver`` cannot serve, with the next step.

    Raises:
        ExportError: a model folder, config or generated file (ONNX, tables) is missing, or
            an ONNX stage was exported for a backend this server lacks.
    """
    repo = Path(repository)
    if not repo.is_dir():
        raise ExportError(f"model repository {str(repo)!r} does not exist; {EXPORT_HINT}")
    problems = []
    for name in (*PYTHON_STAGES, *ONNX_STAGES, *ENSEMBLES):
        config = repo / name / "config.pbtxt"
        if not config.is_file():
            problems.append(f"{config} is missing")
            continue
        try:
            platform = read_model_config(config).platform
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if name in ONNX_STAGES and platform:
            raise ExportError(f"{config} uses platform {platform!r}, which the pip tritonserver "
                              "lacks (python backend only); re-export with `anoncodec export --backend "
                              "python`, or serve this repository with the NGC Triton image")
        if name not in ENSEMBLES:
            problems += [f"{p} is missing" for p in missing_files(repo / name / "1", name)]
            if not (repo / name / "1" / "model.py").is_file():
                problems.append(f"{repo / name / '1' / 'model.py'} is missing")
    if problems:
        raise ExportError(f"model repository {repo} is incomplete ({'; '.join(problems[:4])}"
                          f"{' ...' if len(problems) > 4 else ''}); {EXPORT_HINT}")
    return repo


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports that were free a moment ago on ``host`` (for tests, demos)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on ``port`` of ``host`` (connections in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


_ADMIN_KEY = re.compile(r"[A-Za-z0-9_-]{16,}")
# python-backend shared memory regions (one per model instance, in /dev/shm)
_SHM_REGION = re.compile(r"(/dev/shm/triton_python_backend_shm_region_[0-9a-f-]+)")


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
                          "`python -c 'import secrets; print(secrets.token_urlsafe(32))' > admin.key`")
    if not _ADMIN_KEY.fullmatch(key):
        raise ConfigError(f"the admin key in {str(path)!r} ({len(key)} characters) must be at least 16 "
                          "characters of A-Za-z0-9_- ; generate one with "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if hasattr(os, "getuid") and Path(path).stat().st_mode & 0o077:
        logger.warning("admin key file %s is readable by other users; chmod 600 it", path)
    return key


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc``; just ``[pid]`` elsewhere)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += parents.get(current, [])
    return tree


def _shm_regions(pid: int) -> set[str]:
    """Python-backend shared memory files mapped by ``pid`` or its children."""
    found: set[str] = set()
    for p in _process_tree(pid):
        try:
            found.update(_SHM_REGION.findall(Path(f"/proc/{p}/maps").read_text()))
        except OSError:
            continue
    return found


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

    def start(self) -> "TritonServer":
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

    def __enter__(self) -> "TritonServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.close()
