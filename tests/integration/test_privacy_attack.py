"""benchmarks/privacy_attack.py end to end on one image (a few training steps)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.slow

spec = importlib.util.spec_from_file_location("privacy_attack", REPO / "benchmarks" / "privacy_attack.py")
privacy_attack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(privacy_attack)


def test_attack_trains_and_reports_every_row(tmp_path):
    out = tmp_path / "out"
    code = privacy_attack.main(["--steps", "3", "--batch-size", "2", "--crop-size", "64",
                                "--footage", str(SAMPLES / "vtest_excerpt.avi"), "--max-frames", "2",
                                "--data", str(SAMPLES / "messi5.jpg"), "--out", str(out),
                                "--cache", str(tmp_path / "cache"), "--repeats", "0", "--no-progress",
                                "--device", "cpu", "--save-decoder", str(tmp_path / "decoder.pt")])
    assert code == 0
    record = json.loads((out / "attack.json").read_text())
    assert record["config"]["steps"] == 3 and len(record["loss_history"]) >= 1
    assert record["footage"] == ["vtest_excerpt.avi"] and record["test_data"] == ["messi5.jpg"]
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {m["family"]: m for m in metrics["methods"]}
    assert set(rows) == {"original", "ours", "guard", "attack", "attack-guard"}
    assert rows["attack"]["bpp"] == rows["ours"]["bpp"]  # the attacker decodes our very packets
    assert rows["attack-guard"]["bpp"] == rows["guard"]["bpp"]
    report = (out / "report.md").read_text()
    assert "benchmarks/privacy_attack.py --steps 3" in report
    assert "attack on guarded packets" in report
    assert (tmp_path / "decoder.pt").stat().st_size > 0


def test_footage_that_overlaps_the_test_images_is_refused(tmp_path, capsys):
    image = str(SAMPLES / "messi5.jpg")
    assert privacy_attack.main(["--footage", image, "--data", image, "--out", str(tmp_path)]) == 2
    assert "overlap" in capsys.readouterr().err
