"""tools/gpu_throughput.py on the CPU provider: both chains at two batch sizes, one JSON record."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_both_chains_at_two_batch_sizes(tmp_path):
    from anoncodec.codec import save_checkpoint
    from anoncodec.serving.export import export_repository
    from anoncodec.serving.repository import RepositoryOptions
    from tests.conftest import tiny_codec

    save_checkpoint(tmp_path / "tiny.pt", tiny_codec("factorized"))
    export_repository(tmp_path / "tiny.pt", tmp_path / "repo", RepositoryOptions(max_height=128, max_width=128),
                      detector="fall-yolov8s")
    spec = importlib.util.spec_from_file_location("gpu_throughput", ROOT / "tools" / "gpu_throughput.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--repository", str(tmp_path / "repo"), "--provider", "CPUExecutionProvider",
                        "--width", "128", "--height", "96", "--batches", "1,2", "--repeats", "2", "--warmup", "1",
                        "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "gpu_throughput.json").read_text())
    assert [(r["ensemble"], r["batch"]) for r in record["rows"]] == [
        ("anonymize_frame", 1), ("anonymize_frame", 2), ("analyze_bitstream", 1), ("analyze_bitstream", 2)]
    assert all(r["p99_ms"] >= r["p50_ms"] > 0 and r["frames_per_s"] > 0 for r in record["rows"])
    assert record["precision"] == {"encoder": "fp32", "decoder": "fp32", "detector": "fp32"}
