"""The ``tritonserver`` of the ``nvidia-pytriton`` wheel, and whether it can serve a repository.

Stdlib + anoncodec's errors and :mod:`anoncodec.serving.repository` /
:mod:`anoncodec.serving.runtime` (stage names and generated files); never torch. See
:mod:`anoncodec.serving.launcher` for how the server is started.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from anoncodec.errors import ConfigError, ExportError, MissingDependencyError
from anoncodec.serving.model_config import read_model_config
from anoncodec.serving.repository import ENSEMBLES, ONNX_STAGES, PYTHON_STAGES
from anoncodec.serving.runtime import missing_files

__all__ = ["EXPORT_HINT", "INSTALL_HINT", "TritonInstall", "build_backend_dir", "check_repository",
           "find_tritonserver"]

INSTALL_HINT = "pip install -c constraints.txt 'anoncodec[serve]'` (or `make setup`"
EXPORT_HINT = "run `anoncodec export` to fill it"


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
