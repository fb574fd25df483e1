"""End-to-end: the demo command and the camera-cost benchmark on the real samples."""

import json
import subprocess
import sys

import pytest

from anoncodec.cli.main import main
from anoncodec.codec import save_checkpoint
from tests.conftest import REPO, SAMPLES, tiny_codec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, tiny_codec("factorized", extra_blocks=1))
    return path


def test_demo_writes_images_packets_and_report(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--samples", str(SAMPLES),
                 "--no-serving"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    names = [r["image"] for r in metrics["rows"]]
    assert names == ["messi5", "basketball1", "vtest_000", "vtest_030", "vtest_059"]
    for row in metrics["rows"]:
        assert (out / f"{row['image']}_anonymized.png").is_file()
        assert (out / f"{row['image']}.packet").stat().st_size == row["bytes"] > 0
        assert row["bpp"] > 0 and row["psnr"] > 0
    messi = metrics["rows"][0]
    assert messi["mtcnn_before"] >= 1 and messi["centerface_before"] >= 1 and messi["persons_before"] >= 1
    assert "| image |" in (out / "report.md").read_text()


@pytest.mark.triton
def test_demo_streams_the_clip_through_local_triton(tmp_path, tiny_checkpoint):
    from anoncodec.errors import MissingDependencyError
    from anoncodec.serving.launcher import find_tritonserver

    try:
        find_tritonserver()
    except MissingDependencyError as exc:
        pytest.skip(f"no tritonserver binary: {exc}")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--samples", str(SAMPLES),
                 "--max-frames", "3"]) == 0
    streaming = json.loads((out / "metrics.json").read_text())["streaming"]
    assert [r["mode"] for r in streaming] == ["frames", "packets"]
    for row in streaming:
        assert row["frames_ok"] == 3 and row["frames_failed"] == 0
        lines = (out / f"detections_{row['mode']}.jsonl").read_text().splitlines()
        assert [json.loads(line)["frame"] for line in lines] == [0, 1, 2]
        assert (out / f"stream_{row['mode']}.avi").stat().st_size > 0
    frames, packets = streaming
    assert packets["mean_bytes_per_frame"] < frames["mean_bytes_per_frame"] / 20  # 768x576x3 raw vs packet
    assert "Served pipeline" in (out / "report.md").read_text()


def test_demo_checkpoint_is_bundled_and_loads():
    from anoncodec.codec import load_codec
    from anoncodec.weights import DEMO_CHECKPOINT

    assert DEMO_CHECKPOINT.is_file(), "the demo checkpoint must ship with the package"
    assert DEMO_CHECKPOINT.stat().st_size <= 20 * 1024 * 1024
    model = load_codec(DEMO_CHECKPOINT)
    assert model.architecture == "factorized"


def test_benchmark_script_writes_record(tmp_path, tiny_checkpoint):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "encoder_vs_conventional.py"), "--checkpoint",
                    str(tiny_checkpoint), "--repeats", "2", "--warmup", "1", "--out", str(out)], check=True)
    record = json.loads(out.read_text())
    assert record["input"] == "640x480"
    assert record["timing_ms"]["ours_encoder_onnx"]["median_ms"] > 0
    assert record["ratio_encoder_over_conventional"] > 0 and record["commit"]
    assert record["timing_ms"]["ours_guard_mode"]["median_ms"] > record["timing_ms"]["ours_encoder_onnx"]["median_ms"]
    assert record["guard_heads"] >= 1  # basketball1: CenterFace finds the players' faces
