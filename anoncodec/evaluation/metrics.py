"""Image and detection metrics of the benchmark.

May import numpy, torch, ``pytorch_msssim``, ``pycocotools`` and :mod:`anoncodec.roi`.
AP comes from pycocotools (COCO's reference implementation), MS-SSIM from pytorch-msssim;
nothing here re-implements them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anoncodec.errors import require

__all__ = [
    "bits_per_pixel",
    "head_mask",
    "psnr_outside",
    "msssim_outside",
    "DetectionScore",
    "detection_ap",
    "nan_mean",
]

logger = logging.getLogger(__name__)


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel of a ``num_bytes`` file or packet for an ``height x width`` image."""
    return 8.0 * num_bytes / (height * width)


def head_mask(boxes_xyxy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bool ``[H, W]`` mask, True inside any of the ``[K, 4|5]`` boxes (clipped)."""
    import torch

    from anoncodec.roi.metrics import box_mask

    b = np.asarray(boxes_xyxy, np.float32)
    b = b.reshape(b.shape[0], -1)[:, :4] if b.size else np.zeros((0, 4), np.float32)
    return box_mask(torch.from_numpy(np.ascontiguousarray(b)), height, width).numpy()


def _to_tensor(frame_rgb: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(frame_rgb.transpose(2, 0, 1))).float().div(255)


def psnr_outside(output_rgb: np.ndarray, original_rgb: np.ndarray, boxes_xyxy: np.ndarray) -> float:
    """PSNR (dB, peak 1 on [0,1] images) over the pixels outside every box.

    Args:
        output_rgb, original_rgb: uint8 ``[H, W, 3]`` of the same shape.
        boxes_xyxy: float ``[K, 4|5]`` head boxes; none means the whole image.

    Returns:
        PSNR in dB; ``inf`` when identical there, ``nan`` when the boxes cover everything.
    """
    from anoncodec.roi.metrics import masked_mse, psnr

    _check_pair(output_rgb, original_rgb)
    import torch

    mask = torch.from_numpy(~head_mask(boxes_xyxy, *original_rgb.shape[:2]))
    return psnr(masked_mse(_to_tensor(output_rgb), _to_tensor(original_rgb), mask))


def msssim_outside(output_rgb: np.ndarray, original_rgb: np.ndarray, boxes_xyxy: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, 5 scales, 11x11 Gaussian window) with the heads taken out.

    MS-SSIM is computed over windows, not pixels, so "outside the heads" is realized by
    pasting the original into the head boxes of the output: the heads then contribute no
    error, and the score measures everything else (slightly optimistic by the head area).

    Returns:
        MS-SSIM in [0, 1]; ``nan`` (logged) for images whose shorter side is under 161
        pixels, which 5 scales of an 11-pixel window cannot cover.
    """
    msssim = require("pytorch_msssim", "eval")
    _check_pair(output_rgb, original_rgb)
    h, w = original_rgb.shape[:2]
    if min(h, w) <= 160:
        logger.info("MS-SSIM undefined for a %dx%d image (needs > 160 px per side)", w, h)
        return float("nan")
    mask = head_mask(boxes_xyxy, h, w)
    patched = np.where(mask[..., None], original_rgb, output_rgb)
    x, y = _to_tensor(patched)[None], _to_tensor(original_rgb)[None]
    return float(msssim.ms_ssim(x, y, data_range=1.0, size_average=True))


def _check_pair(output_rgb: np.ndarray, original_rgb: np.ndarray) -> None:
    if output_rgb.shape != original_rgb.shape or original_rgb.ndim != 3:
        raise ValueError(
            f"output shape {output_rgb.shape} differs from original {original_rgb.shape}; "
            "a method must return an image of the input's size"
        )


@dataclass(frozen=True)
class DetectionScore:
    """AP@0.5 and recall@0.5 of detections against ground-truth boxes over a set of images.

    Attributes:
        ap50: COCO AP at IoU 0.5 (101-point interpolated, pycocotools); ``nan`` without
            any ground-truth box.
        recall50: fraction of ground-truth boxes matched at IoU >= 0.5 by some detection.
        num_gt: ground-truth boxes.
        num_det: detections.
    """

    ap50: float
    recall50: float
    num_gt: int
    num_det: int

    def to_dict(self) -> dict[str, float]:
        return {"ap50": self.ap50, "recall50": self.recall50, "num_gt": self.num_gt, "num_det": self.num_det}


def detection_ap(ground_truth: Sequence[np.ndarray], detections: Sequence[np.ndarray]) -> DetectionScore:
    """COCO-style AP@0.5 of one class with pycocotools.

    Args:
        ground_truth: per image float ``[K, 4]`` xyxy boxes.
        detections: per image float ``[J, 5]`` xyxy + score (same image order).

    Returns:
        A :class:`DetectionScore`. No detection at all gives AP 0 (not pycocotools' -1);
        no ground truth gives AP and recall ``nan``.
    """
    coco_mod = require("pycocotools.coco", "eval")
    cocoeval_mod = require("pycocotools.cocoeval", "eval")
    if len(ground_truth) != len(detections):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(detections)} detection lists")
    images, annotations, results = [], [], []
    for i, (gt, det) in enumerate(zip(ground_truth, detections)):
        images.append({"id": i + 1})
        for b in np.asarray(gt, np.float32).reshape(-1, 4):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1,
                                "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 0})
        for d in np.asarray(det, np.float32).reshape(-1, 5):
            results.append({"image_id": i + 1, "category_id": 1, "score": float(d[4]),
                            "bbox": [float(d[0]), float(d[1]), float(d[2] - d[0]), float(d[3] - d[1])]})
    num_gt, num_det = len(annotations), len(results)
    if num_gt == 0:
        return DetectionScore(float("nan"), float("nan"), 0, num_det)
    if num_det == 0:
        return DetectionScore(0.0, 0.0, num_gt, 0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt_api = coco_mod.COCO()
        gt_api.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "x"}]}
        gt_api.createIndex()
        dt_api = gt_api.loadRes(results)
        ev = cocoeval_mod.COCOeval(gt_api, dt_api, iouType="bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [1, 10, 1000]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, 0, 0, -1]  # [R] at IoU .5, class 1, all areas, 1000 dets
    recall = float(ev.eval["recall"][0, 0, 0, -1])
    ap = float(np.mean(precision[precision > -1])) if (precision > -1).any() else 0.0
    return DetectionScore(ap, max(recall, 0.0), num_gt, num_det)


def nan_mean(values: Sequence[float]) -> float:
    """Mean of the finite values (``inf`` kept out too); ``nan`` if there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else float("nan")
