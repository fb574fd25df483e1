"""benchmarks/heldout_video.py: the run-length/shares logic on hand-made flags, and
end to end on an 8-frame held-out clip with the demo checkpoint and blur + JPEG."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import pytest

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location(
    "heldout_video", REPO / "benchmarks" / "heldout_video.py"
)
heldout_video = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = heldout_video  # its dataclasses look their module up
spec.loader.exec_module(heldout_video)


def test_runs_and_shares_of_hand_made_flags():
    FrameRuns = heldout_video.FrameRuns
    flags = [True, True, False, True, True, True, False, False, True, False]
    runs = FrameRuns.from_flags(flags)
    assert (runs.frames, runs.with_face, runs.longest, runs.runs) == (10, 6, 3, 3)
    assert runs.share == pytest.approx(0.6)
    assert runs.to_dict(fps=10)["longest_s"] == pytest.approx(0.3)
    assert FrameRuns.from_flags([True] * 4) == FrameRuns(4, 4, 4, 1)
    assert FrameRuns.from_flags([False] * 3) == FrameRuns(3, 0, 0, 0)
    assert FrameRuns.from_flags([False, True]).longest == 1  # a run at the end
    assert math.isnan(FrameRuns.from_flags([]).share)
    # counts per frame -> flags, as summarize() does it
    row = {
        d: {"heads": [0, 2, 1, 0], "background": [0, 0, 0, 1]}
        for d in heldout_video.DETECTORS
    }
    row.update(bytes=[100, 300, 200, 200], psnr_out=[30.0, float("inf"), 32.0, 34.0])
    s = heldout_video.summarize("jpeg:10", "JPEG q10", {}, row, fps=5)
    assert s["kbit_s"] == pytest.approx(200 * 8 * 5 / 1000)
    assert s["psnr_out"] == pytest.approx(32.0)  # an identical frame (inf) is left out
    centerface = s["heads"]["centerface"]
    assert (centerface["with_face"], centerface["longest"]) == (2, 2)
    assert centerface["share"] == 0.5
    assert s["background"]["mtcnn"]["longest_s"] == pytest.approx(0.2)


def test_bad_specs_are_one_line_errors(tmp_path, capsys):
    assert heldout_video.main(["--method", "webp:10", "--out", str(tmp_path)]) == 2
    assert "ours:NAME_OR_PATH" in capsys.readouterr().err
    assert heldout_video.main(["--method", "jpeg:0", "--out", str(tmp_path)]) == 2
    assert "1..100" in capsys.readouterr().err
    assert not (tmp_path / "heldout_video.json").exists()


def test_guard_rows_name_their_checkpoint():
    parsed = heldout_video.parse_methods(["guard:demo", "ours:demo", "jpeg:10"])
    assert parsed == [("guard:demo", "guard", "demo"), ("ours:demo", "ours", "demo"),
                      ("jpeg:10", "jpeg", "10")]
    with pytest.raises(Exception, match="guard:demo"):
        heldout_video.parse_methods(["guard:"])


@pytest.mark.slow
def test_eight_frames_demo_and_blur_end_to_end(tmp_path):
    pytest.importorskip("facenet_pytorch")
    out = tmp_path / "out"
    argv = ["--frames", "8", "--method", "ours:demo", "--method", "guard:demo", "--method", "blur-jpeg:10"]
    assert heldout_video.main([*argv, "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "heldout_video.json").read_text())
    assert record["benchmark"] == "heldout_video" and len(record["commit"]) >= 7
    assert record["frames"] == 8 and record["fps"] == 10
    clip = record["clip"]
    assert clip["source"] == "composite" and len(clip["faces"]) == 3
    assert "paste()" in clip["ground_truth"]
    per_frame = record["per_frame"]
    for heads, ids in zip(per_frame["heads"], per_frame["face_ids"]):
        assert len(heads) == 3 and sorted(ids) == [0, 1, 2]  # one head per face
        sizes = [y2 - y1 for _, y1, _, y2 in heads]
        assert all(25 <= s <= 165 for s in sizes)  # 30-160 px, clipping aside
    rows = {s["key"]: s for s in record["summaries"]}
    assert list(rows) == ["original", "ours:demo", "guard:demo", "blur-jpeg:10"]
    for key in ("ours:demo", "guard:demo", "blur-jpeg:10"):
        row, frames = rows[key], per_frame[key]
        assert len(frames["bytes"]) == 8 and min(frames["bytes"]) > 0
        kbit_s = np.mean(frames["bytes"]) * 8 * 10 / 1000
        assert row["kbit_s"] == pytest.approx(kbit_s)
        assert 15 < row["psnr_out"] < 60
        for name in heldout_video.DETECTORS:
            again = frames[name]["heads"]
            original = per_frame["original"][name]["heads"]
            assert all(a <= o for a, o in zip(again, original))  # found again <= found
            runs = heldout_video.FrameRuns.from_flags([a > 0 for a in again])
            assert row["heads"][name]["with_face"] == runs.with_face
            assert row["heads"][name]["longest"] == runs.longest <= runs.with_face
            assert rows["original"]["heads"][name]["with_face"] >= runs.with_face
    assert rows["original"]["heads"]["centerface"]["with_face"] > 0  # faces to find
    report = (out / "heldout_video.md").read_text()
    assert "| ours:demo |" in report and "| blur-jpeg:10 |" in report
    assert "benchmarks/heldout_video.py --frames 8" in report
