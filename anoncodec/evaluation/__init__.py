"""Evaluation: baselines, latency, metrics, identity leakage and the privacy/utility benchmark.

May import anoncodec.codec, anoncodec.data, anoncodec.detectors, anoncodec.edge,
anoncodec.roi, anoncodec.errors and anoncodec.config; never training, serving or cli.
Submodules needing torch or dlib (``mtcnn``, ``benchmark``, ``leakage``...) are imported
lazily.

Entry points for new work (e.g. privacy attacks):

- :func:`identity_leakage`: originals + outputs + face boxes -> leakage stats;
- :func:`callable_method` + :func:`evaluate_method`: benchmark any
  ``frame -> (output frame, bytes)`` callable with the same detectors and metrics.
"""

from typing import Any

from anoncodec.evaluation.baselines import (
    blur_regions,
    fill_regions,
    jpeg_decode,
    jpeg_encode,
    pixelate_regions,
)
from anoncodec.evaluation.latency import LatencyStats, environment, time_call, write_record

__all__ = [
    "blur_regions",
    "pixelate_regions",
    "fill_regions",
    "jpeg_encode",
    "jpeg_decode",
    "LatencyStats",
    "time_call",
    "environment",
    "write_record",
    "identity_leakage",
    "LeakageStats",
    "FaceEmbedder",
    "Method",
    "callable_method",
    "build_methods",
    "Benchmark",
    "DetectorSettings",
    "evaluate_method",
    "summarize",
    "detection_ap",
    "write_report",
]

_LAZY = {
    "identity_leakage": "leakage",
    "LeakageStats": "leakage",
    "FaceEmbedder": "leakage",
    "Method": "methods",
    "callable_method": "methods",
    "build_methods": "methods",
    "Benchmark": "benchmark",
    "DetectorSettings": "benchmark",
    "evaluate_method": "benchmark",
    "summarize": "benchmark",
    "detection_ap": "metrics",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"anoncodec.evaluation.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
