"""The benchmark's measuring instruments and their settings (part of the cache key).

May import numpy, :mod:`anoncodec.detectors`, :mod:`anoncodec.evaluation.leakage` and
:mod:`anoncodec.evaluation.mtcnn` (torch; lazily).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoncodec.detectors.catalog import DEFAULT_PERSON_CONF, EVALUATION_PERSON_CLASSES
from anoncodec.evaluation.leakage import FaceEmbedder

__all__ = ["EVAL_VERSION", "DetectorSettings", "Detectors"]

# Bump when what a cached per-image record means changes.
EVAL_VERSION = "eval-v1"


@dataclass(frozen=True)
class DetectorSettings:
    """How the detectors measure (defaults: the served pipeline's person detector).

    Args:
        person_conf: YOLO person score threshold (served default 0.25).
        person_iou: YOLO NMS IoU (served default 0.45).
        person_classes: classes that count as a person ((0, 1): the offline fall-detection
            model's "normal" and "fall").
        person_input: YOLO letterbox size (640).
        person_model: YOLOv8 ONNX file ("": the offline default).
        centerface_threshold: CenterFace score threshold for face recall (0.4).
        mtcnn_threshold: MTCNN probability threshold; 0 keeps every face MTCNN's own
            cascade accepts (the most sensitive setting for a privacy check).
        mtcnn_min_face: smallest face MTCNN searches for, pixels.
        dlib_upsample: times dlib's detector upsamples originals to find embeddable faces.
        match_distance: descriptor distance under which a face counts as recognized.
    """

    person_conf: float = DEFAULT_PERSON_CONF
    person_iou: float = 0.45
    person_classes: tuple[int, ...] = EVALUATION_PERSON_CLASSES
    person_input: int = 640
    person_model: str = ""
    centerface_threshold: float = 0.4
    mtcnn_threshold: float = 0.0
    mtcnn_min_face: int = 20
    dlib_upsample: int = 1
    match_distance: float = 0.6

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def cache_id(self) -> str:
        blob = json.dumps({"v": EVAL_VERSION, **self.to_dict()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]


class Detectors:
    """The measuring instruments: YOLO persons, MTCNN and CenterFace faces, dlib descriptors.

    Args:
        settings: thresholds and models.
        device: torch device for MTCNN ("cpu" or "cuda").
    """

    def __init__(self, settings: DetectorSettings = DetectorSettings(), device: str = "cpu") -> None:
        from anoncodec.detectors import CenterFaceDetector, YoloPersonDetector
        from anoncodec.evaluation.mtcnn import MtcnnFaceDetector

        self.settings = settings
        self.yolo = YoloPersonDetector(settings.person_model or None, settings.person_classes,
                                       settings.person_iou, settings.person_input)
        self.centerface = CenterFaceDetector()
        self.mtcnn = MtcnnFaceDetector(settings.mtcnn_min_face, device=device)
        self.embedder = FaceEmbedder(upsample=settings.dlib_upsample)

    def detect(self, frame_rgb: np.ndarray) -> dict[str, np.ndarray]:
        """``persons``, ``mtcnn`` and ``centerface`` detections, float32 ``[K, 5]`` each."""
        s = self.settings
        return {
            "persons": self.yolo.detect(frame_rgb, s.person_conf),
            "mtcnn": self.mtcnn.detect(frame_rgb, s.mtcnn_threshold),
            "centerface": self.centerface.detect(frame_rgb, s.centerface_threshold),
        }
