"""Honest single-stream latency: warm-up, repeats, CUDA synchronization, median and p90."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["LatencyStats", "time_call", "cpuinfo", "environment", "write_record"]


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds over ``repeats`` timed calls."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    repeats: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _synchronize() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], warmup: int = 3, repeats: int = 20,
              synchronize: bool = False) -> LatencyStats:
    """Time ``fn()``; with ``synchronize`` the CUDA device is synchronized around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if synchronize:
            _synchronize()
        t0 = time.perf_counter()
        fn()
        if synchronize:
            _synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    a = np.asarray(times)
    return LatencyStats(float(np.median(a)), float(np.percentile(a, 90)), float(a.mean()), float(a.min()), repeats)


def cpuinfo(key: str) -> str | None:
    """The first ``key`` entry of ``/proc/cpuinfo`` (e.g. ``"model name"``, ``"cpu MHz"``), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), None)
    except OSError:
        return None


def environment() -> dict[str, object]:
    """Commit, CPU, core count and library versions for a benchmark record."""
    import importlib.metadata as md
    import os

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    cpu = cpuinfo("model name") or platform.processor()
    versions = {}
    for pkg in ("numpy", "onnxruntime", "torch", "compressai", "opencv-python-headless", "constriction"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"commit": commit, "device": f"cpu: {cpu}", "cores": os.cpu_count(), "versions": versions}


def write_record(record: dict, path: str | os.PathLike[str]) -> None:
    """Write one benchmark record as indented JSON (creating the folder) and say where."""
    import json
    from pathlib import Path

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
