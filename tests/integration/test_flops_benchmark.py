"""Smoke run of benchmarks/flops.py: GFLOPs and GFLOP/s of the codec's graphs, one JSON record."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _script():
    spec = importlib.util.spec_from_file_location("flops_benchmark", ROOT / "benchmarks" / "flops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flops_of_the_demo_codec_and_the_served_detector(tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "flops.json"
    argv = ["--checkpoint", "demo", "--width", "320", "--height", "240", "--repeats", "2", "--warmup", "1",
            "--skip", "pose", "--skip", "centerface", "--skip", "ssd", "--out", str(out)]
    assert _script().main(argv) == 0
    record = json.loads(out.read_text())
    rows = {r["model"]: r for r in record["models"]}
    assert set(rows) == {"encoder", "decoder", "fall-yolov8s (served before issue 11)"}
    enc, dec = rows["encoder"], rows["decoder"]
    # the demo codec (N=32, M=96, downsampling 32: five stride-2 5x5 convolutions, a GDN after
    # each of the first four, i.e. a 1x1 N x N convolution) at 320x240, padded to 320x256
    layers = ((128, 160, 3, 32), (64, 80, 32, 32), (32, 40, 32, 32), (16, 20, 32, 32), (8, 10, 32, 96))
    macs = sum(h * w * cin * cout * 25 for h, w, cin, cout in layers)
    macs += sum(h * w * 32 * 32 for h, w, _, _ in layers[:4])
    assert enc["gflops"] == pytest.approx(2 * macs / 1e9, rel=1e-3)
    # the decoder: transposed convolutions, and inverse GDN as 1x1 convolutions
    assert dec["by_op_gmacs"].keys() == {"ConvTranspose", "Conv"} and enc["by_op_gmacs"].keys() == {"Conv"}
    assert all(r["median_ms"] > 0 and r["gflops_per_s"] > 0 for r in rows.values())
    assert record["cpu"]["numpy_sgemm_gflops"] > 0
    assert "GFLOP/s" in capsys.readouterr().out
