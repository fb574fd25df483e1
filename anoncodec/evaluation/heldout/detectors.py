"""The instruments (:class:`HeldoutDetectors`) and what they find on an original.

May import numpy, opencv, :mod:`anoncodec.detectors`,
:mod:`anoncodec.evaluation.benchmark` and, of this package, ``settings``, ``data`` and
``measures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.evaluation.heldout.data import HeldoutImage
from anoncodec.evaluation.heldout.measures import heads_found
from anoncodec.evaluation.heldout.settings import HeldoutSettings


class HeldoutDetectors:
    """The instruments: the evaluation's ``Detectors`` plus YOLO11n-pose.

    :class:`~anoncodec.evaluation.benchmark.Detectors` brings the served YOLO, MTCNN,
    CenterFace and dlib.

    Args:
        settings: thresholds.
        device: torch device of MTCNN.
        detectors: reuse loaded ``Detectors`` (built otherwise; their thresholds are not
            used: every call here passes its own).
        pose: reuse a loaded person detector for the second row (else YOLO11n-pose).
        pose_model: ONNX or ultralytics ``.pt`` pose model for ``YoloPoseDetector``.
    """

    def __init__(
        self,
        settings: HeldoutSettings = HeldoutSettings(),  # noqa: B008 (frozen)
        device: str = "cpu",
        detectors: Any = None,
        pose: Any = None,
        pose_model: str | Path | None = None,
    ) -> None:
        from anoncodec.evaluation.benchmark import Detectors, DetectorSettings

        self.settings = settings
        self.base = detectors or Detectors(
            DetectorSettings(
                person_conf=settings.person_conf,
                centerface_threshold=settings.centerface_threshold,
                mtcnn_threshold=0.0,
                match_distance=settings.match_distance,
            ),
            device,
        )
        if pose is None:
            from anoncodec.detectors import YoloPoseDetector

            pose = YoloPoseDetector(pose_model, input_size=settings.pose_input)
        self.pose = pose

    @property
    def embedder(self) -> Any:
        return self.base.embedder

    def faces(self, frame_rgb: np.ndarray) -> dict[str, np.ndarray]:
        """Detections ``[K, 5]`` of every row of :data:`FACE_DETECTORS`."""
        import cv2

        s = self.settings
        mtcnn = self.base.mtcnn.detect(frame_rgb, 0.0)
        big = cv2.resize(
            frame_rgb, None, fx=s.upscale, fy=s.upscale, interpolation=cv2.INTER_CUBIC
        )
        upscaled = self.base.centerface.detect(big, s.centerface_threshold).copy()
        upscaled[:, :4] /= s.upscale
        return {
            "mtcnn": mtcnn,
            "mtcnn-p0.9": mtcnn[mtcnn[:, 4] >= s.mtcnn_strict],
            "centerface": self.base.centerface.detect(
                frame_rgb, s.centerface_threshold
            ),
            "centerface-2x": upscaled,
        }

    def persons(self, frame_rgb: np.ndarray) -> dict[str, np.ndarray]:
        """Detections ``[K, 5]`` of every row of :data:`PERSON_DETECTORS`."""
        conf = self.settings.person_conf
        return {
            "served": self.base.yolo.detect(frame_rgb, conf),
            "pose": self.pose.detect(frame_rgb, conf),
        }


@dataclass
class OriginalAnalysis:
    """What the instruments find on an original (computed once per image).

    Attributes:
        faces: per face detector, its detections ``[J, 5]``.
        found: per face detector, which heads it finds (bool ``[K]``).
        persons: per person detector, its detections ``[P, 5]``.
        dlib_faces: faces dlib can embed, float32 ``[F, 4]``.
        descriptors: their descriptors, float32 ``[F, 128]``.
    """

    faces: dict[str, np.ndarray]
    found: dict[str, np.ndarray]
    persons: dict[str, np.ndarray]
    dlib_faces: np.ndarray
    descriptors: np.ndarray

    @classmethod
    def of(cls, image: HeldoutImage, detectors: HeldoutDetectors) -> OriginalAnalysis:
        frame = image.frame_rgb
        faces = detectors.faces(frame)
        dlib_faces = detectors.embedder.detect(frame)
        return cls(
            faces,
            {k: heads_found(image.heads_xyxy, v) for k, v in faces.items()},
            detectors.persons(frame),
            dlib_faces,
            detectors.embedder.embed(frame, dlib_faces),
        )
