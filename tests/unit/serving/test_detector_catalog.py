"""Named detectors for `anoncodec export --detector NAME`: the served stages decode the real model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anoncodec.detectors.catalog import DEFAULT_DETECTOR, DETECTORS, detector_entry
from anoncodec.serving.repository import RepositoryOptions
from tests.conftest import SAMPLES, tiny_codec


def test_names_resolve_and_paths_do_not():
    assert detector_entry(None) is DETECTORS[DEFAULT_DETECTOR] and detector_entry("") is DETECTORS[DEFAULT_DETECTOR]
    assert detector_entry("yolo11n-pose").person_classes == (0,)
    assert detector_entry("models/my.onnx") is None
    assert all("AGPL" in e.license for e in DETECTORS.values())


def test_a_named_detector_needs_its_own_repository():
    from anoncodec.cli.export import destination, repository_options
    from anoncodec.cli.main import build_parser
    from anoncodec.errors import ConfigError

    args = build_parser().parse_args(["export", "--detector", "yolo11n-pose"])
    with pytest.raises(ConfigError, match="--detector"):
        destination(args, repository_options(args))
    args = build_parser().parse_args(["export", "--detector", DEFAULT_DETECTOR])
    assert destination(args, repository_options(args)) == "model_repository"


def test_yolo11n_pose_served_finds_the_persons_of_a_sample(tmp_path):
    pytest.importorskip("onnxruntime")
    from anoncodec.detectors.person import letterbox
    from anoncodec.detectors.pose import YoloPoseDetector
    from anoncodec.serving.export import export_repository
    from anoncodec.serving.model_config import read_model_config
    from anoncodec.serving.runtime import load_stage
    from anoncodec.serving.stages import letterbox_to_array

    report = export_repository(repository=tmp_path, model=tiny_codec("factorized"), detector="yolo11n-pose",
                               options=RepositoryOptions(max_height=480, max_width=640))
    assert report.detector == "yolo11n-pose" and report.person_classes == (0,) and "AGPL" in report.detector_license
    assert 'key: "person_classes"' in (tmp_path / "detector_postprocess" / "config.pbtxt").read_text()

    def stage(name):
        return load_stage(name, tmp_path / name / "1", read_model_config(tmp_path / name / "config.pbtxt").parameters)

    frame = np.asarray(Image.open(SAMPLES / "basketball1.png").convert("RGB"))
    images, params = letterbox(frame, report.detector_input)
    out = stage("detector")({"detector_images": images})["detector_output"]
    found = stage("detector_postprocess")({"detector_postprocess_output": out,
                                          "detector_postprocess_letterbox": letterbox_to_array(params)})
    boxes = found["detector_postprocess_boxes"]
    reference = YoloPoseDetector(input_size=640).detect(frame)
    assert len(boxes) >= 1 and len(boxes) == len(reference)
    np.testing.assert_allclose(np.sort(boxes, axis=0), np.sort(reference[:, :4], axis=0), atol=2.0)
