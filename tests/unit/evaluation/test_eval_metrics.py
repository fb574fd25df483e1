import math

import numpy as np
import pytest

from anoncodec.evaluation.metrics import bits_per_pixel, detection_ap, msssim_outside, nan_mean, psnr_outside

GT = [np.array([[10, 10, 50, 50], [100, 100, 150, 160]], np.float32), np.zeros((0, 4), np.float32)]


def test_ap_of_perfect_detections_is_one():
    dets = [np.concatenate([GT[0], [[0.9], [0.8]]], axis=1), np.zeros((0, 5))]
    score = detection_ap(GT, dets)
    assert score.ap50 == pytest.approx(1.0) and score.recall50 == pytest.approx(1.0)
    assert (score.num_gt, score.num_det) == (2, 2)


def test_ap_with_a_false_positive_ranked_first():
    # ranked: FP (0.95) then TP (0.9); then one GT is never found -> precision 0.5 up to
    # recall 0.5: 101-point AP = 0.5 * 51 / 101
    dets = [np.array([[10, 10, 50, 50, 0.9]]), np.array([[0, 0, 10, 10, 0.95]])]
    score = detection_ap(GT, dets)
    assert score.ap50 == pytest.approx(0.5 * 51 / 101)
    assert score.recall50 == pytest.approx(0.5)


def test_ap_iou_threshold_is_half():
    shifted = GT[0] + np.array([12, 0, 12, 0], np.float32)  # IoU 28/52 = 0.54 and 38/62 = 0.61
    score = detection_ap(GT[:1], [np.concatenate([shifted, [[0.9], [0.8]]], axis=1)])
    assert score.ap50 == pytest.approx(1.0)
    too_far = GT[0] + np.array([20, 0, 20, 0], np.float32)  # IoU 20/60 = 0.33
    assert detection_ap(GT[:1], [np.concatenate([too_far[:1], [[0.9]]], axis=1)]).ap50 == 0.0


def test_ap_without_detections_is_zero_and_without_ground_truth_nan():
    assert detection_ap(GT, [np.zeros((0, 5)), np.zeros((0, 5))]).ap50 == 0.0
    empty = detection_ap([np.zeros((0, 4))], [np.array([[0, 0, 5, 5, 0.9]])])
    assert math.isnan(empty.ap50) and empty.num_det == 1
    with pytest.raises(ValueError):
        detection_ap(GT, [np.zeros((0, 5))])


@pytest.fixture
def image():
    return np.random.default_rng(1).integers(20, 230, size=(180, 200, 3), dtype=np.uint8)


def test_psnr_outside_ignores_the_boxes(image):
    damaged = image.copy()
    damaged[10:50, 20:60] = 0
    assert psnr_outside(image, image, np.zeros((0, 4))) == math.inf
    assert psnr_outside(damaged, image, np.array([[20, 10, 60, 50]])) == math.inf
    offset = image + np.uint8(10)  # MSE = (10/255)^2 everywhere
    assert psnr_outside(offset, image, np.array([[0, 0, 30, 30]])) == pytest.approx(20 * math.log10(25.5), abs=1e-3)
    assert math.isnan(psnr_outside(offset, image, np.array([[0, 0, 200, 180]])))
    with pytest.raises(ValueError):
        psnr_outside(image[:10], image, [])


def test_msssim_outside(image):
    damaged = image.copy()
    damaged[10:50, 20:60] = 0
    assert msssim_outside(image, image, []) == pytest.approx(1.0)
    assert msssim_outside(damaged, image, np.array([[20, 10, 60, 50]])) == pytest.approx(1.0)
    assert msssim_outside(damaged, image, []) < 0.99
    assert math.isnan(msssim_outside(image[:100, :100], image[:100, :100], []))


def test_bpp_and_nan_mean():
    assert bits_per_pixel(100, 10, 20) == pytest.approx(4.0)
    assert nan_mean([1.0, float("nan"), 3.0, float("inf")]) == 2.0
    assert math.isnan(nan_mean([]))
