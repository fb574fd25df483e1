"""Labels of the corpus photos: faces, persons and heads, found once and cached.

May import numpy, tqdm, :mod:`anoncodec.data._images`, :mod:`anoncodec.data.corpus`,
:mod:`anoncodec.data.footage`, :mod:`anoncodec.data.heads` and, lazily on a cache miss,
the detectors. The cache is ``<corpus>/labels.json``, keyed by each file's sha256 and
:data:`LABELER_VERSION`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.data._images import load_rgb
from anoncodec.data.corpus import CorpusFile

__all__ = ["LABELER_VERSION", "label_corpus"]

LABELER_VERSION = "corpus-labels-v2"  # v2: pose-keypoint heads and persons added
_LABEL_MAX_SIDE = 1280  # the detectors see corpus images at most this large


def _scaled(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, _LABEL_MAX_SIDE / max(h, w))
    if scale >= 1:
        return rgb, 1.0
    return cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA), scale


def _detect_scaled(detector: Any, rgb: np.ndarray, threshold: float) -> np.ndarray:
    small, scale = _scaled(rgb)
    dets = np.asarray(detector.detect(small, threshold), np.float32).reshape(-1, 5)
    dets[:, :4] /= scale
    return dets


def _pose_scaled(detector: Any, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    small, scale = _scaled(rgb)
    persons, keypoints = detector.detect_pose(small, threshold)
    persons = np.asarray(persons, np.float32).reshape(-1, 5).copy()
    keypoints = np.asarray(keypoints, np.float32).reshape(-1, 17, 3).copy()
    persons[:, :4] /= scale
    keypoints[:, :, :2] /= scale
    return persons, keypoints


def _add_new_persons(persons: np.ndarray, more: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """``persons`` plus the boxes of ``more`` that overlap none of them by ``iou`` or more."""
    from anoncodec.detectors.nms import box_iou

    keep = [m for m in more if not len(persons) or float(box_iou(m[:4], persons[:, :4]).max()) < iou]
    return np.concatenate([persons, np.asarray(keep, np.float32).reshape(-1, persons.shape[1])], axis=0)


def label_corpus(
    root: str | Path,
    files: Sequence[CorpusFile],
    face_detector: Any = None,
    person_detector: Any = None,
    pose_detector: Any = None,
    face_threshold: float = 0.4,
    person_conf: float = 0.4,
) -> dict[str, dict[str, Any]]:
    """Faces, persons and heads of every corpus photo, cached in ``<root>/labels.json``.

    Persons: the served person detector's, plus the pose model's (YOLO11n-pose) that
    overlap none of them (IoU < 0.5). Heads: every face grows into its head box; every
    pose person adds the head its face keypoints give (ears alone for a head turned away,
    :func:`~anoncodec.data.heads.pose_head_boxes`) unless a face already covers it; upright
    persons still without one get the top of their box
    (:func:`~anoncodec.data.footage.heads_from_detections`). Avatars need no detector
    (:data:`anoncodec.data.composite.AVATAR_HEAD`); videos are not labeled here.

    Returns:
        ``{path: {"width", "height", "faces", "persons", "heads"}}`` (boxes as lists).
    """
    from tqdm.auto import tqdm

    from anoncodec.data.heads import heads_from_detections, pose_head_boxes

    root = Path(root)
    cache_path = root / "labels.json"
    cache: dict[str, Any] = {}
    if cache_path.is_file():
        try:
            payload = json.loads(cache_path.read_text())
            if payload.get("version") == LABELER_VERSION:
                cache = payload["files"]
        except (ValueError, KeyError):
            cache = {}
    todo = [f for f in files if f.kind not in ("face", "video")
            and cache.get(f.path, {}).get("sha256") != f.sha256]
    if todo:
        if face_detector is None:
            from anoncodec.detectors import CenterFaceDetector

            face_detector = CenterFaceDetector()
        if person_detector is None:
            from anoncodec.detectors import YoloPersonDetector

            person_detector = YoloPersonDetector()
        if pose_detector is None:
            from anoncodec.detectors import YoloPoseDetector

            pose_detector = YoloPoseDetector()
    for f in tqdm(todo, desc="labeling corpus", unit="image", disable=None):
        rgb = load_rgb(root / f.path)
        faces = _detect_scaled(face_detector, rgb, face_threshold)
        persons = _detect_scaled(person_detector, rgb, person_conf)
        pose_persons, keypoints = _pose_scaled(pose_detector, rgb, person_conf)
        pose_heads = pose_head_boxes(keypoints, pose_persons)
        persons = _add_new_persons(persons, pose_persons)
        heads = heads_from_detections(faces, persons, rgb.shape[:2], extra_heads=pose_heads)
        cache[f.path] = {"sha256": f.sha256, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                         "faces": np.round(faces, 1).tolist(), "persons": np.round(persons, 1).tolist(),
                         "heads": np.round(heads, 1).tolist()}
    if todo:
        tmp = cache_path.with_name(".labels.json.tmp")
        tmp.write_text(json.dumps({"version": LABELER_VERSION, "files": cache}))
        os.replace(tmp, cache_path)
    return {f.path: cache[f.path] for f in files if f.path in cache}
