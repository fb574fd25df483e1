"""Benchmark data specs -> annotated images, with a sentence saying where the ground truth comes from.

May import :mod:`anoncodec.config`, :mod:`anoncodec.data`, :mod:`anoncodec.errors` and
:mod:`anoncodec.frames`.

Specs (``anoncodec evaluate --data``, repeatable):

- ``crowdhuman:FILE.odgt``: CrowdHuman; persons = visible boxes (``vbox``), faces = head
  boxes (``hbox``); images in ``--images`` or ``<odgt folder>/Images``.
- ``coco:FILE.json``: COCO person keypoints; persons = person boxes, faces = head boxes
  derived from the face keypoints; images in ``--images`` or ``<json folder>/images``.
- ``footage:PATH`` or just ``PATH``: a folder of images, one image or a video (every
  ``frame_stride``-th frame, at most ``max_frames``). No annotations: the ground truth is
  what the detectors find on the *original* frames (YOLO persons; heads from CenterFace
  faces, plus heads derived from the top of person boxes without a face).

``frame_stride`` and ``max_frames`` apply to videos only; ``max_images`` caps any spec.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anoncodec.config import DataSourceConfig
from anoncodec.data import AnnotatedImage, load_source
from anoncodec.errors import ConfigError, DatasetError
from anoncodec.frames import IMAGE_SUFFIXES

__all__ = ["EvalData", "parse_data_spec", "load_eval_data"]

logger = logging.getLogger(__name__)

KINDS = ("crowdhuman", "coco", "footage")


@dataclass
class EvalData:
    """Images of one data spec and a description of their ground truth.

    Attributes:
        spec: the spec as given.
        items: the annotated images (persons = person ground truth, heads = face ground
            truth and the region left out of PSNR/MS-SSIM).
        ground_truth: one sentence for the report.
        detected_ground_truth: True when the ground truth comes from detectors run on the
            originals rather than from human annotations.
    """

    spec: str
    items: list[AnnotatedImage]
    ground_truth: str
    detected_ground_truth: bool


def parse_data_spec(spec: str, images: str = "", frame_stride: int = 1, max_frames: int = 0) -> DataSourceConfig:
    """Turn ``kind:PATH`` (or a bare path: footage) into a :class:`DataSourceConfig`.

    Raises:
        ConfigError: unknown kind or an empty path.
    """
    kind, sep, path = spec.partition(":")
    if not sep or kind not in KINDS:
        kind, path = "footage", spec  # a bare path (which may itself contain ':')
    if not path:
        raise ConfigError(f"data spec {spec!r} has no path; expected e.g. crowdhuman:val.odgt, "
                          "coco:person_keypoints.json or a folder/video path")
    if kind == "footage":
        if Path(path).is_dir() or Path(path).suffix.lower() in IMAGE_SUFFIXES:
            frame_stride, max_frames = 1, 0  # video options; --max-images caps folders
        return DataSourceConfig(kind="footage", path=path, frame_stride=frame_stride, max_frames=max_frames)
    return DataSourceConfig(kind=kind, path=path, images=images,
                            person_box="visible" if kind == "crowdhuman" else "full",
                            max_frames=max_frames)


def load_eval_data(spec: str, images: str = "", frame_stride: int = 1, max_frames: int = 0,
                   max_images: int = 0, cache_dir: str | Path | None = None,
                   person_conf: float = 0.25, face_threshold: float = 0.4,
                   face_detector: Any = None, person_detector: Any = None) -> EvalData:
    """Load one data spec with the project's loaders.

    Args:
        spec: see the module docstring.
        images: image folder of a CrowdHuman/COCO spec.
        frame_stride: take every n-th frame of a video (ignored for images and folders).
        max_frames: at most this many frames of a video (0: all; ignored for images and
            folders, use ``max_images``).
        max_images: keep the first n images of any spec (0: all).
        cache_dir: where footage annotations are cached.
        person_conf: person score threshold that makes footage ground truth.
        face_threshold: CenterFace threshold that makes footage ground truth.
        face_detector, person_detector: detectors for footage ground truth (defaults:
            CenterFace and the offline YOLO, built only when the cache misses).

    Raises:
        ConfigError, DatasetError: bad spec or unreadable data.
    """
    src = parse_data_spec(spec, images, frame_stride, max_frames)
    if src.kind == "footage":
        from anoncodec.data import load_footage

        items = load_footage(src, cache_dir=cache_dir, face_detector=face_detector,
                             person_detector=person_detector, person_conf=person_conf,
                             face_threshold=face_threshold)
        truth = (f"no annotations: ground truth = detections on the ORIGINAL frames (YOLO persons at "
                 f"conf {person_conf}; heads from CenterFace faces at {face_threshold}, plus heads derived "
                 "from the top of upright person boxes without a face)")
        detected = True
    else:
        items = load_source(src)
        truth = ("CrowdHuman annotations: persons = visible boxes (vbox), faces = head boxes (hbox)"
                 if src.kind == "crowdhuman" else
                 "COCO annotations: persons = person boxes, faces = head boxes derived from face keypoints")
        detected = False
    if max_images:
        items = items[:max_images]
    if not items:
        raise DatasetError(f"data spec {spec!r} yielded no images")
    logger.info("data %s: %d images (%s)", spec, len(items), src.kind)
    return EvalData(spec, items, truth, detected)
