"""Offline detectors used to auto-annotate footage and to evaluate reconstructions.

Numpy + onnxruntime + opencv only (``onnx`` optionally, to rewrite CenterFace's static
graph); never torch. May import :mod:`anoncodec.errors`, :mod:`anoncodec.config` and
:mod:`anoncodec.roi.boxes`. Both detectors return float32 ``[K, 5]`` arrays
(x1, y1, x2, y2 in frame pixels, score). The person detectors are YOLOv8-format ONNX models
(``person``, ``pose``) and SSD-MobileNetV2-COCO on OpenCV's DNN module (``ssd``).
"""

from anoncodec.detectors.face import (
    CenterFaceDetector,
    default_face_model_path,
    face_to_head_box,
)
from anoncodec.detectors.nms import box_iou, nms
from anoncodec.detectors.person import (
    LetterboxParams,
    YoloPersonDetector,
    decode_yolo,
    default_person_model_path,
    letterbox,
)
from anoncodec.detectors.pose import (
    YoloPoseDetector,
    decode_yolo_pose,
    default_pose_model_path,
    pose_onnx_path,
)
from anoncodec.detectors.ssd import (
    SsdModelFiles,
    SsdPersonDetector,
    decode_ssd,
    default_ssd_model_files,
)

__all__ = [
    "CenterFaceDetector",
    "default_face_model_path",
    "face_to_head_box",
    "YoloPersonDetector",
    "default_person_model_path",
    "LetterboxParams",
    "letterbox",
    "decode_yolo",
    "nms",
    "box_iou",
    "YoloPoseDetector",
    "default_pose_model_path",
    "pose_onnx_path",
    "decode_yolo_pose",
    "SsdPersonDetector",
    "SsdModelFiles",
    "default_ssd_model_files",
    "decode_ssd",
]
