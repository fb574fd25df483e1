"""export/build_tensorrt.sh with a fake trtexec, and benchmarks/serving_overhead.py --help.

No TensorRT here: a tiny shell script named ``trtexec`` records its arguments and writes
the ``--saveEngine`` file, so the shapes and paths the build script passes can be checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anoncodec.serving.repository import RepositoryOptions, write_configs

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "export" / "build_tensorrt.sh"
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")

FAKE_TRTEXEC = """#!/bin/sh
# records one call per line (arguments separated by tabs), writes the engine file
printf '%s\\t' "$@" >> "$CALLS"; printf '\\n' >> "$CALLS"
{static}
for arg in "$@"; do
    case "$arg" in --saveEngine=*) printf 'plan' > "${{arg#--saveEngine=}}" ;; esac
done
"""
# makes the detector behave like a static ONNX model: refuses shape profiles like trtexec does
STATIC_DETECTOR = """case "$*" in *detector_images*)
    echo "[E] Static model does not take explicit shapes since the shape of inference tensors will be determined by the model itself"
    exit 1 ;; esac"""


# a YOLO detector at 640: an ONNX stage that gets a plan (the default SSD is a python stage)
YOLO = {"detector_kind": "yolo", "detector_height": 640, "detector_width": 640, "person_classes": (0, 1)}


def tensorrt_repository(root: Path, max_height: int = 576, max_width: int = 768, factor: int = 16,
                        channels: int = 96, backend: str = "tensorrt", max_batch: int = 4,
                        detector: dict | None = None) -> Path:
    """A folder laid out like `anoncodec export --backend tensorrt` (dummy ONNX files)."""
    repo = root / "repo"
    write_configs(repo, RepositoryOptions(backend=backend, max_height=max_height, max_width=max_width,
                                          max_batch=max_batch, **(YOLO if detector is None else detector)))
    codec = {"model_id": "00" * 16, "downsampling": factor, "latent_channels": channels,
             "architecture": "factorized"}
    for stage in ("frame_preprocess", "entropy_decode"):
        (repo / stage / "1" / "codec.json").write_text(json.dumps(codec, indent=2) + "\n")
    for stage in ("encoder", "decoder", "detector"):
        (repo / stage / "1" / "model.onnx").write_bytes(b"not really onnx")
    return repo


def fake_trtexec(folder: Path, static_detector: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trtexec"
    path.write_text(FAKE_TRTEXEC.format(static=STATIC_DETECTOR if static_detector else ""))
    path.chmod(0o755)
    return folder


def run_script(args: list[str], path_dirs: list[Path], tmp_path: Path, **env: str):
    environ = {k: v for k, v in os.environ.items() if k not in ("TRTEXEC", "MAX_HEIGHT", "MAX_WIDTH",
                                                                  "REPOSITORY", "TRTEXEC_ARGS")}
    environ.update(PATH=os.pathsep.join([str(p) for p in path_dirs] + ["/usr/bin", "/bin"]),
                   CALLS=str(tmp_path / "calls.txt"), **env)
    return subprocess.run([BASH, str(SCRIPT), *args], check=False, capture_output=True, text=True, env=environ,
                          timeout=60)


def recorded_calls(tmp_path: Path) -> list[list[str]]:
    lines = (tmp_path / "calls.txt").read_text().splitlines()
    return [[a for a in line.split("\t") if a] for line in lines if line.strip()]


def by_stage(calls: list[list[str]]) -> dict[str, list[str]]:
    out = {}
    for call in calls:
        onnx = next(a for a in call if a.startswith("--onnx="))
        out[Path(onnx.split("=", 1)[1]).parts[-3]] = call
    return out


def test_script_is_valid_bash():
    result = subprocess.run([BASH, "-n", str(SCRIPT)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_script_is_shellcheck_clean():
    result = subprocess.run(["shellcheck", str(SCRIPT)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_builds_three_plans_with_shape_profiles(tmp_path):
    repo = tensorrt_repository(tmp_path)
    result = run_script([str(repo)], [fake_trtexec(tmp_path / "bin")], tmp_path)
    assert result.returncode == 0, result.stderr
    calls = by_stage(recorded_calls(tmp_path))
    assert sorted(calls) == ["decoder", "detector", "encoder"]
    expected = {  # max 576x768 from the config, opt 480x640, min one latent pixel (factor 16);
        # batch 1..4 (max_batch_size), tuned for 4
        "encoder": ("encoder_x", "1x3x16x16", "4x3x480x640", "4x3x576x768"),
        "decoder": ("decoder_y_hat", "1x96x1x1", "4x96x30x40", "4x96x36x48"),
        "detector": ("detector_images", "1x3x640x640", "4x3x640x640", "4x3x640x640"),
    }
    for stage, (name, lo, opt, hi) in expected.items():
        call = calls[stage]
        assert f"--onnx={repo}/{stage}/1/model.onnx" in call
        assert f"--saveEngine={repo}/{stage}/1/model.plan" in call
        assert "--fp16" in call
        assert f"--minShapes={name}:{lo}" in call
        assert f"--optShapes={name}:{opt}" in call
        assert f"--maxShapes={name}:{hi}" in call
        assert (repo / stage / "1" / "model.plan").read_text() == "plan"


def test_the_default_ssd_detector_stays_a_python_stage_without_a_plan(tmp_path):
    repo = tensorrt_repository(tmp_path, detector={})
    result = run_script([str(repo)], [fake_trtexec(tmp_path / "bin")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(by_stage(recorded_calls(tmp_path))) == ["decoder", "encoder"]
    assert "detector: a python stage" in result.stdout
    assert not (repo / "detector" / "1" / "model.plan").exists()


def test_max_size_arguments_round_up_to_the_downsampling(tmp_path):
    repo = tensorrt_repository(tmp_path, factor=32, channels=8)
    result = run_script([str(repo), "1000", "1900"], [fake_trtexec(tmp_path / "bin")], tmp_path,
                        PRECISION="fp32", TRTEXEC_ARGS="--memPoolSize=workspace:1024")
    assert result.returncode == 0, result.stderr
    calls = by_stage(recorded_calls(tmp_path))
    assert "--maxShapes=encoder_x:4x3x1024x1920" in calls["encoder"]
    assert "--optShapes=encoder_x:4x3x480x640" in calls["encoder"]
    assert "--minShapes=decoder_y_hat:1x8x1x1" in calls["decoder"]
    assert "--maxShapes=decoder_y_hat:4x8x32x60" in calls["decoder"]
    assert all("--fp16" not in c and "--memPoolSize=workspace:1024" in c for c in calls.values())


def test_without_batching_every_profile_has_batch_1(tmp_path):
    repo = tensorrt_repository(tmp_path, max_batch=0)
    result = run_script([str(repo)], [fake_trtexec(tmp_path / "bin")], tmp_path)
    assert result.returncode == 0, result.stderr
    calls = by_stage(recorded_calls(tmp_path))
    assert "--maxShapes=encoder_x:1x3x576x768" in calls["encoder"]
    assert "--optShapes=detector_images:1x3x640x640" in calls["detector"]
    assert "--maxShapes=detector_images:1x3x640x640" in calls["detector"]


def test_opt_batch_is_capped_by_the_max_batch(tmp_path):
    repo = tensorrt_repository(tmp_path, max_batch=8)
    result = run_script([str(repo)], [fake_trtexec(tmp_path / "bin")], tmp_path, OPT_BATCH="2")
    assert result.returncode == 0, result.stderr
    calls = by_stage(recorded_calls(tmp_path))
    assert "--optShapes=encoder_x:2x3x480x640" in calls["encoder"]
    assert "--maxShapes=encoder_x:8x3x576x768" in calls["encoder"]
    result = run_script([str(repo)], [fake_trtexec(tmp_path / "bin")], tmp_path, OPT_BATCH="x")
    assert result.returncode != 0 and "OPT_BATCH" in result.stderr


def test_static_detector_is_rebuilt_without_shapes(tmp_path):
    repo = tensorrt_repository(tmp_path, max_batch=0)
    result = run_script([str(repo)], [fake_trtexec(tmp_path / "bin", static_detector=True)], tmp_path)
    assert result.returncode == 0, result.stderr
    detector_calls = [c for c in recorded_calls(tmp_path) if any("detector/1/model.onnx" in a for a in c)]
    assert len(detector_calls) == 2
    assert not any(a.startswith("--minShapes") for a in detector_calls[1])
    assert (repo / "detector" / "1" / "model.plan").is_file()


def test_without_trtexec_fails_clearly(tmp_path):
    if Path("/usr/src/tensorrt/bin/trtexec").exists():
        pytest.skip("this machine has /usr/src/tensorrt/bin/trtexec")
    repo = tensorrt_repository(tmp_path)
    result = run_script([str(repo)], [], tmp_path)
    assert result.returncode != 0
    assert "trtexec not found" in result.stderr
    assert "nvcr.io/nvidia/tritonserver:24.10-py3" in result.stderr
    assert not (tmp_path / "calls.txt").exists()


def test_refuses_a_repository_exported_for_another_backend(tmp_path):
    repo = tensorrt_repository(tmp_path, backend="python")
    result = run_script([str(repo)], [fake_trtexec(tmp_path / "bin")], tmp_path)
    assert result.returncode != 0
    assert "--backend tensorrt" in result.stderr
    assert not (tmp_path / "calls.txt").exists()


def test_serving_overhead_help():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serving_overhead.py"), "--help"],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for flag in ("--repository", "--url", "--repeats", "--warmup", "--concurrency", "--width", "--height"):
        assert flag in result.stdout


def test_serving_overhead_asks_for_an_export(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serving_overhead.py"),
                             "--repository", str(tmp_path / "empty"), "--out", str(tmp_path / "out.json")],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert ".venv/bin/anoncodec export" in result.stderr
    assert not (tmp_path / "out.json").exists()


@pytest.mark.gpu
def test_real_trtexec_builds_every_engine(tmp_path):
    """Where TensorRT exists (the NGC Triton image), build real FP16 engines of a tiny export."""
    if shutil.which("trtexec") is None:
        pytest.skip("trtexec (TensorRT) is not installed here; this runs inside the NGC Triton image")
    from anoncodec.cli.main import main
    from anoncodec.codec import save_checkpoint
    from tests.conftest import tiny_codec

    save_checkpoint(tmp_path / "tiny.pt", tiny_codec("factorized", extra_blocks=1))
    repo = tmp_path / "repo"
    assert main(["export", "--checkpoint", str(tmp_path / "tiny.pt"), "--repository", str(repo),
                 "--backend", "tensorrt", "--max-height", "128", "--max-width", "128",
                 "--detector", "fall-yolov8s"]) == 0
    script = Path(__file__).resolve().parents[2] / "export" / "build_tensorrt.sh"
    subprocess.run(["bash", str(script), str(repo), "128", "128"], check=True)
    for stage in ("encoder", "decoder", "detector"):
        assert (repo / stage / "1" / "model.plan").stat().st_size > 0
