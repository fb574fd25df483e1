"""benchmarks/throughput_levers.py without a server: lever specs, availability and the table."""

from __future__ import annotations

import argparse
import importlib.util

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def levers():
    spec = importlib.util.spec_from_file_location("throughput_levers", REPO / "benchmarks" / "throughput_levers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lever_specs(levers):
    assert levers._lever("int8") == ("int8", ["--detector", "fall-yolov8s", "--int8"])
    assert levers._lever("three=--instances 3 --threads 1") == ("three", ["--instances", "3", "--threads", "1"])
    with pytest.raises(argparse.ArgumentTypeError, match="expected one of"):
        levers._lever("turbo")
    assert levers.available("ssd", ["--detector", "ssd-mobilenetv2"])
    assert not levers.available("x", ["--detector", "no-such-detector"])


def _capacity(rps, users=1):
    return {"rps": rps, "users": users, "p50_ms": 100.0, "p95_ms": 150.0}


def test_table_gives_each_lever_its_ratio_to_the_baseline(levers):
    results = [
        {"lever": "baseline", "flags": [], "capacity": {"anonymize_frame": _capacity(2.0),
                                                        "analyze_bitstream": _capacity(2.5)}},
        {"lever": "ssd", "flags": ["--detector", "ssd-mobilenetv2"],
         "capacity": {"anonymize_frame": _capacity(7.0, 3), "analyze_bitstream": None}},
        {"lever": "broken", "flags": ["--int8"], "error": ["export failed"]},
    ]
    table = levers.render(results, 2500.0)
    assert "| ssd | `--detector ssd-mobilenetv2` | anonymize_frame | 7.00 | 3 | 100 | 150 | 3.50x |" in table
    assert "| ssd | `--detector ssd-mobilenetv2` | analyze_bitstream | none within 2500 ms |" in table
    assert "| baseline | `(defaults)` | analyze_bitstream | 2.50 | 1 | 100 | 150 | 1.00x |" in table
    assert "failed: export failed" in table
