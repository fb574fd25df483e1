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
    assert all("AGPL" in e.license for e in DETECTORS.values() if e.kind == "yolo")
    ssd = detector_entry("ssd-mobilenetv2")
    assert ssd.kind == "ssd" and ssd.person_classes == (1,) and ssd.input_size == (300, 300)
    # what the wheel's metadata says, and what the TF model zoo says
    assert "License: UNKNOWN" in ssd.license and ssd.license.startswith("Apache-2.0")


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


def test_detector_size_takes_a_side_or_height_x_width():
    from anoncodec.cli.export import repository_options
    from anoncodec.cli.main import build_parser

    for flag, size in (("512", (512, 512)), ("480x640", (480, 640))):
        args = build_parser().parse_args(["export", "--detector", "ssd-mobilenetv2", "--detector-size", flag])
        options = repository_options(args)
        assert (options.detector_height, options.detector_width) == size
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--detector-size", "480x"])


@pytest.fixture(scope="module")
def ssd_installed():
    from anoncodec.detectors.ssd import default_ssd_model_files
    from anoncodec.errors import MissingDependencyError

    try:
        return default_ssd_model_files()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


def _stage(repo, name):
    from anoncodec.serving.model_config import read_model_config
    from anoncodec.serving.runtime import load_stage

    return load_stage(name, repo / name / "1", read_model_config(repo / name / "config.pbtxt").parameters)


@pytest.mark.parametrize("size", [None, (480, 640)])
def test_ssd_served_finds_the_persons_of_a_sample(tmp_path, ssd_installed, size):
    from anoncodec.detectors.person import letterbox
    from anoncodec.detectors.ssd import SsdPersonDetector
    from anoncodec.serving.export import export_repository
    from anoncodec.serving.runtime import SsdDetector, missing_files
    from anoncodec.serving.stages import letterbox_to_array

    options = RepositoryOptions(max_height=480, max_width=640)
    if size is not None:
        options = RepositoryOptions(max_height=480, max_width=640, detector_height=size[0], detector_width=size[1])
    report = export_repository(repository=tmp_path, model=tiny_codec("factorized"), detector="ssd-mobilenetv2",
                               options=options)
    expected_size = size or (300, 300)  # the entry's native size unless one is asked for
    assert report.detector == "ssd-mobilenetv2" and report.person_classes == (1,)
    assert report.detector_input == expected_size and "Apache-2.0" in report.detector_license
    assert sorted(p.name for p in (tmp_path / "detector" / "1").iterdir() if p.name != "model.py") == [
        "model.pb", "model.pbtxt"]
    assert missing_files(tmp_path / "detector" / "1", "detector") == []
    assert f"dims: [ 1, 3, {expected_size[0]}, {expected_size[1]} ]" in (
        tmp_path / "decoder_postprocess" / "config.pbtxt").read_text()

    detector = _stage(tmp_path, "detector")
    assert isinstance(detector, SsdDetector)
    frame = np.asarray(Image.open(SAMPLES / "basketball1.png").convert("RGB"))
    images, params = letterbox(frame, report.detector_input)
    out = detector({"detector_images": images})["detector_output"]
    assert out.dtype == np.float32 and out.ndim == 3 and out.shape[0] == 1 and out.shape[2] == 7
    found = _stage(tmp_path, "detector_postprocess")({"detector_postprocess_output": out,
                                                      "detector_postprocess_letterbox": letterbox_to_array(params)})
    reference = SsdPersonDetector(input_size=report.detector_input).detect(frame)
    assert len(reference) >= 2  # the two players
    np.testing.assert_allclose(found["detector_postprocess_boxes"], reference[:, :4], atol=0.5)
    np.testing.assert_allclose(found["detector_postprocess_scores"], reference[:, 4], atol=1e-4)
    # a batch (Triton's dynamic batcher): each image gets its own rows, as image 0
    gray = np.full_like(images, 0.5)
    both = detector({"detector_images": np.concatenate([gray, images])})["detector_output"]
    assert both.shape[0] == 2 and not (both[0, :, 2] > 0.25).any()
    batched = _stage(tmp_path, "detector_postprocess")({"detector_postprocess_output": both[1:],
                                                        "detector_postprocess_letterbox": letterbox_to_array(params)})
    np.testing.assert_allclose(batched["detector_postprocess_boxes"], reference[:, :4], atol=0.5)
    # a bad request is that request's error, not a crash
    from anoncodec.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="detector_images"):
        detector({"detector_images": images[:, :2]})
    (tmp_path / "detector" / "1" / "model.pbtxt").unlink()
    assert missing_files(tmp_path / "detector" / "1", "detector") == [tmp_path / "detector" / "1" / "model.pbtxt"]
