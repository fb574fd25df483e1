"""Identity leakage: does a face-*recognition* model still match a face after anonymization?

Detectors only say whether *a* face is there; the question that matters for privacy is
whether it is still *this person's* face. For every face of an original image that dlib's
recognition model can embed, the same region of the output is embedded too and the two
128-d descriptors are compared: a distance under 0.6 (dlib's and ``face_recognition``'s
usual threshold) counts as a match, i.e. the identity leaked.

Choices (stated in the report):

- *Which faces*: those dlib's own HOG detector finds on the original (optionally upsampled),
  or boxes the caller passes. Faces dlib cannot find on the original are not "embeddable"
  and do not count either way.
- *Counterpart region*: the same face box in the output, given to dlib as a known face
  location, so that dlib embeds the region even where its own detector would no longer fire
  (an attacker knows where the faces were: the person detector tells him).
- *Small faces*: a square crop around the face (twice its size) is upscaled with bicubic
  interpolation until the face is at least :data:`MIN_FACE_SIDE` pixels, identically for the
  original and the output, before landmarks and descriptors are computed.

May import numpy, opencv and ``face_recognition`` (dlib; weights from the
``face-recognition-models`` wheel, nothing downloaded).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from anoncodec.errors import MissingDependencyError

__all__ = [
    "MATCH_DISTANCE",
    "MIN_FACE_SIDE",
    "FaceEmbedder",
    "LeakageStats",
    "identity_leakage",
    "leakage_from_distances",
]

logger = logging.getLogger(__name__)

MATCH_DISTANCE = 0.6
MIN_FACE_SIDE = 100
FACE_RECOGNITION_INSTALL = (
    "pip install -c constraints.txt dlib-bin face-recognition-models && "
    "pip install -c constraints.txt --no-deps face-recognition==1.3.0"
)


def _face_recognition():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
            import face_recognition
    except ImportError as exc:
        raise MissingDependencyError(
            f"face_recognition (dlib) is not installed ({exc}); install it with "
            f"`{FACE_RECOGNITION_INSTALL}` or run `make setup`"
        ) from exc
    return face_recognition


class FaceEmbedder:
    """dlib face detection and 128-d face descriptors (through ``face_recognition``).

    Args:
        upsample: times dlib's HOG detector upsamples the original to find small faces.
        min_face_side: faces smaller than this (pixels) are upscaled before embedding.
        num_jitters: descriptor re-sampling (1: dlib default, deterministic).
    """

    def __init__(self, upsample: int = 1, min_face_side: int = MIN_FACE_SIDE, num_jitters: int = 1) -> None:
        self.fr = _face_recognition()
        self.upsample = int(upsample)
        self.min_face_side = int(min_face_side)
        self.num_jitters = int(num_jitters)

    def detect(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Faces dlib's HOG detector finds: float32 ``[K, 4]`` xyxy pixel boxes."""
        locations = self.fr.face_locations(np.ascontiguousarray(frame_rgb), self.upsample, model="hog")
        boxes = [[left, top, right, bottom] for top, right, bottom, left in locations]
        return np.asarray(boxes, np.float32).reshape(-1, 4)

    def embed(self, frame_rgb: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Descriptors of the given face boxes: float32 ``[K, 128]``.

        Each face is cropped (a square twice the face's size, zero-padded at the borders),
        upscaled so the face is at least ``min_face_side`` pixels, and embedded at its known
        location, so every box yields a descriptor whatever the pixels look like.
        """
        import cv2

        out = []
        for x1, y1, x2, y2 in np.asarray(boxes_xyxy, np.float32).reshape(-1, 4):
            side = max(x2 - x1, y2 - y1, 1.0)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            half = side  # crop = 2x the face
            xa, ya = int(math.floor(cx - half)), int(math.floor(cy - half))
            size = int(math.ceil(2 * half))
            crop = _crop_padded(frame_rgb, xa, ya, size)
            scale = max(1.0, self.min_face_side / side)
            if scale > 1.0:
                crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            top, left = int(round((y1 - ya) * scale)), int(round((x1 - xa) * scale))
            bottom, right = int(round((y2 - ya) * scale)), int(round((x2 - xa) * scale))
            (vec,) = self.fr.face_encodings(np.ascontiguousarray(crop), [(top, right, bottom, left)],
                                            num_jitters=self.num_jitters)
            out.append(np.asarray(vec, np.float32))
        return np.asarray(out, np.float32).reshape(-1, 128)


def _crop_padded(frame: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """``size x size`` crop at ``(x, y)``; parts outside the frame are black."""
    h, w = frame.shape[:2]
    crop = np.zeros((size, size, 3), np.uint8)
    xa, ya, xb, yb = max(0, x), max(0, y), min(w, x + size), min(h, y + size)
    if xb > xa and yb > ya:
        crop[ya - y : yb - y, xa - x : xb - x] = frame[ya:yb, xa:xb]
    return crop


@dataclass(frozen=True)
class LeakageStats:
    """Identity leakage over a set of faces.

    Attributes:
        faces: embeddable faces of the originals.
        matched: faces whose output counterpart is within ``threshold`` of the original.
        leakage: ``matched / faces`` (``nan`` without faces); 1.0 = every identity leaked.
        mean_distance: mean descriptor distance original -> output (``nan`` without faces).
        threshold: the match distance.
        distances: per face distance, in input order.
    """

    faces: int
    matched: int
    leakage: float
    mean_distance: float
    threshold: float = MATCH_DISTANCE
    distances: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, object]:
        return {"faces": self.faces, "matched": self.matched, "leakage": self.leakage,
                "mean_distance": self.mean_distance, "threshold": self.threshold,
                "distances": list(self.distances)}


def leakage_from_distances(distances: Sequence[float], threshold: float = MATCH_DISTANCE) -> LeakageStats:
    """Aggregate per-face descriptor distances into :class:`LeakageStats`."""
    d = [float(v) for v in distances]
    if not d:
        return LeakageStats(0, 0, float("nan"), float("nan"), threshold, ())
    matched = sum(v < threshold for v in d)
    return LeakageStats(len(d), matched, matched / len(d), float(np.mean(d)), threshold, tuple(d))


def identity_leakage(
    originals: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    face_boxes: Sequence[np.ndarray] | None = None,
    embedder: FaceEmbedder | None = None,
    threshold: float = MATCH_DISTANCE,
) -> LeakageStats:
    """Identity leakage of ``outputs`` with respect to ``originals``.

    Public building block for privacy attacks: pass the decoder of an attacker as the
    producer of ``outputs`` and the same originals and boxes.

    Args:
        originals: uint8 ``[H, W, 3]`` RGB originals.
        outputs: the anonymized/decoded images, same sizes and order.
        face_boxes: per image float ``[K, 4]`` xyxy face boxes to test; ``None``: the faces
            dlib's detector finds on each original.
        embedder: a :class:`FaceEmbedder` (built with defaults if omitted).
        threshold: descriptor distance under which a face counts as recognized.

    Returns:
        :class:`LeakageStats` over all faces of all images.
    """
    if len(originals) != len(outputs):
        raise ValueError(f"{len(originals)} originals but {len(outputs)} outputs")
    if face_boxes is not None and len(face_boxes) != len(originals):
        raise ValueError(f"{len(face_boxes)} face box lists for {len(originals)} images")
    embedder = embedder or FaceEmbedder()
    distances: list[float] = []
    for i, (orig, out) in enumerate(zip(originals, outputs)):
        if orig.shape != out.shape:
            raise ValueError(f"image {i}: output shape {out.shape} differs from original {orig.shape}")
        boxes = embedder.detect(orig) if face_boxes is None else np.asarray(face_boxes[i], np.float32)
        if len(boxes) == 0:
            continue
        a, b = embedder.embed(orig, boxes[:, :4]), embedder.embed(out, boxes[:, :4])
        distances.extend(np.linalg.norm(a - b, axis=1).tolist())
    return leakage_from_distances(distances, threshold)
