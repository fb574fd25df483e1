"""Pre/post-processing of the detectors on hand-made arrays (no model files needed)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from anoncodec.detectors import box_iou, decode_yolo, face_to_head_box, letterbox, nms
from anoncodec.detectors.face import _decode


def test_box_iou_and_nms():
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32
    )
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    np.testing.assert_allclose(
        box_iou(boxes[0], boxes[:3]), [1.0, 81 / 119, 0.0], rtol=1e-6
    )
    keep = nms(boxes, scores, iou_threshold=0.45)
    assert keep.tolist() == [3, 2]  # 3 suppresses 0 and 1 (IoU > 0.45)
    assert nms(boxes, scores, iou_threshold=0.99).tolist() == [3, 0, 1, 2]
    assert nms(boxes, scores, max_det=1).tolist() == [3]
    assert nms(np.zeros((0, 4)), np.zeros(0)).shape == (0,)


def test_letterbox_geometry_and_padding():
    frame = np.full((100, 200, 3), 255, np.uint8)
    tensor, p = letterbox(frame, 64)
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert (p.scale, p.pad_x, p.pad_y, p.src_h, p.src_w) == (0.32, 0, 16, 100, 200)
    np.testing.assert_allclose(tensor[0, :, :16], 114 / 255, rtol=1e-6)  # top padding
    np.testing.assert_allclose(
        tensor[0, :, 48:], 114 / 255, rtol=1e-6
    )  # bottom padding
    np.testing.assert_allclose(tensor[0, :, 16:48], 1.0)
    np.testing.assert_allclose(
        p.to_source([[0, 16, 64, 48]]), [[0, 0, 200, 100]], atol=1e-4
    )


def test_decode_yolo_nms_and_mapping_back():
    _, params = letterbox(np.zeros((100, 200, 3), np.uint8), 64)  # scale 0.32, pad_y 16
    # anchors (columns): cx, cy, w, h, score class 0, score class 1
    out = np.array(
        [
            [32, 32, 16, 16, 0.9, 0.1],  # kept (class 0)
            [33, 32, 16, 16, 0.2, 0.8],  # suppressed by the first (class-agnostic NMS)
            [8, 24, 8, 8, 0.1, 0.6],  # kept (class 1 counts as person)
            [50, 40, 8, 8, 0.1, 0.1],  # below conf
            [62, 20, 8, 8, 0.5, 0.0],  # kept, clipped at the right edge
        ],
        np.float32,
    ).T[None]
    dets = decode_yolo(out, params, conf=0.25, iou=0.45)
    assert dets.shape == (3, 5) and dets.dtype == np.float32
    np.testing.assert_allclose(dets[:, 4], [0.9, 0.6, 0.5])
    np.testing.assert_allclose(dets[0, :4], [75, 25, 125, 75], atol=1e-3)
    np.testing.assert_allclose(dets[1, :4], [12.5, 12.5, 37.5, 37.5], atol=1e-3)
    np.testing.assert_allclose(dets[2, :4], [181.25, 0, 200, 25], atol=1e-3)
    only_normal = decode_yolo(out, params, conf=0.25, person_classes=(0,))
    np.testing.assert_allclose(only_normal[:, 4], [0.9, 0.5])
    assert decode_yolo(out, params, conf=0.95).shape == (0, 5)
    with pytest.raises(ValueError):
        decode_yolo(out, params, person_classes=(2,))


def test_face_to_head_box_factors():
    faces = np.array([[100, 100, 120, 130, 0.9]], np.float32)  # w=20, h=30
    heads = face_to_head_box(faces)
    np.testing.assert_allclose(heads, [[97, 85, 123, 131.5]], atol=1e-4)
    clipped = face_to_head_box(faces, image_hw=(120, 121))
    np.testing.assert_allclose(clipped, [[97, 85, 121, 120]], atol=1e-4)
    assert face_to_head_box(np.zeros((0, 5))).shape == (0, 4)


def test_centerface_decode_single_cell():
    heat = np.zeros((1, 1, 8, 8), np.float32)
    heat[0, 0, 2, 3] = 0.9
    log_scale = np.zeros((1, 2, 8, 8), np.float32)
    log_scale[0, 0, 2, 3] = np.log(2.0)  # height 8
    offset = np.zeros((1, 2, 8, 8), np.float32)
    offset[0, 1, 2, 3] = 0.25  # x offset
    dets = _decode(heat, log_scale, offset, threshold=0.5)
    # cx = (3 + 0.25 + 0.5) * 4 = 15, cy = (2 + 0.5) * 4 = 10, w = 4, h = 8
    np.testing.assert_allclose(dets, [[13, 6, 17, 14, 0.9]], atol=1e-5)
    assert _decode(heat, log_scale, offset, threshold=0.95).shape == (0, 5)


def test_detectors_do_not_import_torch():
    code = (
        "import sys, anoncodec.detectors, anoncodec.detectors.face, anoncodec.detectors.person;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
