"""End to end: ``anoncodec evaluate`` runs every method on real images and resumes from its cache."""

from __future__ import annotations

import json
import time

import pytest

from anoncodec.cli.main import main
from anoncodec.frames import read_frames
from tests.conftest import SAMPLES

METHODS = ["original", "ours", "jpeg:20", "webp:20", "avif:30", "blur:20", "pixelate:20", "fill:20"]


@pytest.mark.slow
def test_evaluate_every_method_on_three_images(tmp_path, capsys):
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "messi5.png"), cv2.imread(str(SAMPLES / "messi5.jpg")))
    cv2.imwrite(str(folder / "basketball1.png"), cv2.imread(str(SAMPLES / "basketball1.png")))
    # two frames of the bundled clip at half size, as a real (MJPG) video file
    video = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (384, 288))
    for frame in read_frames(SAMPLES / "vtest_excerpt.avi", max_frames=2):
        video.write(cv2.resize(frame[:, :, ::-1], (384, 288), interpolation=cv2.INTER_AREA))
    video.release()
    out = tmp_path / "out"
    argv = ["evaluate", "--data", str(folder), "--data", str(tmp_path / "clip.avi"), "--max-frames", "1",
            "--methods", *METHODS, "--out", str(out), "--repeats", "1", "--warmup", "0", "--no-progress"]
    start = time.perf_counter()
    assert main(argv) == 0
    first = time.perf_counter() - start
    printed = capsys.readouterr().out.split()
    for name in ("report.md", "metrics.json", "person_ap_vs_bpp.png", "leakage_vs_bpp.png", "image_grid.jpg"):
        assert str(out / name) in printed and (out / name).stat().st_size > 0

    metrics = json.loads((out / "metrics.json").read_text())
    rows = {m["family"]: m for m in metrics["methods"]}
    assert list(rows) == ["original", "ours", "jpeg", "webp", "avif", "blur", "pixelate", "fill"]
    assert all(m["images"] == 3 for m in rows.values())
    assert [d["images"] for d in metrics["data"]] == [2, 1] and all(d["detected_ground_truth"] for d in metrics["data"])
    original = rows["original"]
    assert original["person"]["ap50"] > 0.9  # ground truth = the original's own detections
    assert original["leakage"]["faces"] >= 2 and original["leakage"]["leakage"] == 1.0
    assert original["psnr_out"] == "inf" and original["decode_ms"] > 0  # strict JSON: no NaN/Infinity
    for family, m in rows.items():
        assert m["bpp"] > 0 and m["encode_ms"] > 0 and m["decode_ms"] > 0, family
        assert m["leakage"]["faces"] == original["leakage"]["faces"]
        if family != "original":
            assert m["bpp"] < 2 and 10 < m["psnr_out"] < 60, family
    assert rows["fill"]["leakage"]["leakage"] == 0.0  # solid-filled faces
    from anoncodec.codec import load_checkpoint
    from anoncodec.weights import default_checkpoint

    # a bare "ours" is the ladder's default checkpoint
    assert rows["ours"]["params"]["model_id"] == load_checkpoint(default_checkpoint().path)["model_id"]
    report = (out / "report.md").read_text()
    assert "anoncodec evaluate --data" in report and "## Where our codec stands" in report
    assert "ground truth = detections on the ORIGINAL frames" in report

    # resumed from the per-image cache: nothing is encoded or detected again
    start = time.perf_counter()
    assert main(argv) == 0
    second = time.perf_counter() - start
    assert json.loads((out / "metrics.json").read_text())["methods"][1]["bpp"] == rows["ours"]["bpp"]
    assert second < first / 2, (first, second)
