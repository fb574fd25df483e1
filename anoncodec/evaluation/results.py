"""Benchmark results: what one method did to one image, and one method's report row.

May import numpy, :mod:`anoncodec.data`, :mod:`anoncodec.detectors` (lazily) and the
evaluation modules ``leakage``, ``methods`` and ``metrics``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anoncodec.data import AnnotatedImage
from anoncodec.evaluation.leakage import leakage_from_distances
from anoncodec.evaluation.methods import Method
from anoncodec.evaluation.metrics import detection_ap, nan_mean

__all__ = ["ImageResult", "MethodSummary", "summarize"]


@dataclass
class ImageResult:
    """What one method did to one image (one cache file).

    Attributes:
        image: image id.
        method: method key.
        height, width: image size.
        num_bytes: size of the bitstream/file.
        bpp: bits per pixel of those bytes.
        psnr_out: PSNR outside the head boxes, dB.
        msssim_out: MS-SSIM with the heads taken out.
        persons, mtcnn, centerface: detections on the decoded image, ``[K, 5]`` lists.
        face_distances: dlib descriptor distance of each embeddable face of the original.
        encode_ms, decode_ms: latency stats (``LatencyStats.to_dict()``) or ``None``.
    """

    image: str
    method: str
    height: int
    width: int
    num_bytes: int
    bpp: float
    psnr_out: float
    msssim_out: float
    persons: list[list[float]]
    mtcnn: list[list[float]]
    centerface: list[list[float]]
    face_distances: list[float]
    encode_ms: dict[str, float] | None = None
    decode_ms: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageResult:
        return cls(**data)

    def boxes(self, name: str) -> np.ndarray:
        """Detections ``name`` as float32 ``[K, 5]``."""
        return np.asarray(getattr(self, name), np.float32).reshape(-1, 5)


@dataclass
class MethodSummary:
    """One row of the report: a method at one rate point, aggregated over the images.

    Attributes:
        key, family, label, params: from the :class:`Method`.
        images: images evaluated.
        bpp: mean bits per pixel; psnr_out, msssim_out: means over images.
        person: person AP/recall vs the person ground truth (YOLO).
        face_mtcnn: face AP/recall vs the head ground truth (MTCNN faces grown to heads).
        face_centerface: same for CenterFace (its ``recall50`` is the reported recall).
        found_again: per face detector (``"mtcnn"``, ``"centerface"``), the share of the faces
            it finds on the original that it finds again (IoU >= 0.5) on the output; ``nan``
            without a reference or without faces on the originals.
        leakage: identity leakage stats.
        encode_ms, decode_ms: median over images of the per-image median latency (nan if
            not measured or not separable).
    """

    key: str
    family: str
    label: str
    params: dict[str, Any]
    images: int
    bpp: float
    psnr_out: float
    msssim_out: float
    person: dict[str, float]
    face_mtcnn: dict[str, float]
    face_centerface: dict[str, float]
    found_again: dict[str, float]
    leakage: dict[str, Any]
    encode_ms: float
    decode_ms: float
    per_image: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _grow_faces(dets: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Face detections ``[K, 5]`` -> head boxes with the same scores (comparable with head GT)."""
    from anoncodec.detectors import face_to_head_box

    if len(dets) == 0:
        return np.zeros((0, 5), np.float32)
    heads = face_to_head_box(dets[:, :4])
    heads[:, [0, 2]] = heads[:, [0, 2]].clip(0, hw[1])
    heads[:, [1, 3]] = heads[:, [1, 3]].clip(0, hw[0])
    return np.concatenate([heads, dets[:, 4:5]], axis=1).astype(np.float32)


def _mean_psnr(values: list[float]) -> float:
    """Mean PSNR over images; ``inf`` only when every image is reproduced exactly."""
    if values and all(math.isinf(v) and v > 0 for v in values):
        return float("inf")
    return nan_mean(values)


def _latency(values: list[dict[str, float] | None]) -> float:
    medians = [v["median_ms"] for v in values if v]
    return float(np.median(medians)) if medians else float("nan")


def summarize(method: Method, items: Sequence[AnnotatedImage], results: Sequence[ImageResult],
              match_distance: float = 0.6, reference: Sequence[ImageResult] | None = None) -> MethodSummary:
    """Aggregate one method's per-image results into a report row.

    Face detections are grown into head boxes (the rule the footage annotator uses for
    CenterFace faces) before AP/recall against the head ground truth, so that a face found
    where the head is counts as found.

    Args:
        method: the method the results belong to.
        items: the images, with their ground truth.
        results: the method's per-image results, in ``items`` order.
        match_distance: identity-match threshold.
        reference: the original's per-image results (the ``original`` method), for the
            "faces found again" shares.
    """
    if len(items) != len(results) or (reference is not None and len(reference) != len(results)):
        raise ValueError(f"{len(items)} images but {len(results)} results for {method.key}")
    found_again = {"mtcnn": float("nan"), "centerface": float("nan")}
    if reference is not None:
        for name in found_again:
            score = detection_ap([r.boxes(name)[:, :4] for r in reference], [r.boxes(name) for r in results])
            found_again[name] = score.recall50
    hw = [(r.height, r.width) for r in results]
    persons = detection_ap([it.persons_xyxy for it in items], [r.boxes("persons") for r in results])
    heads = [it.heads_xyxy for it in items]
    mtcnn = detection_ap(heads, [_grow_faces(r.boxes("mtcnn"), s) for r, s in zip(results, hw)])
    centerface = detection_ap(heads, [_grow_faces(r.boxes("centerface"), s)
                                      for r, s in zip(results, hw)])
    leakage = leakage_from_distances([d for r in results for d in r.face_distances], match_distance)
    per_image = [{"image": r.image, "bytes": r.num_bytes, "bpp": r.bpp, "psnr_out": r.psnr_out,
                  "msssim_out": r.msssim_out,
                  "persons": len(r.persons), "mtcnn_faces": len(r.mtcnn),
                  "centerface_faces": len(r.centerface),
                  "face_distances": r.face_distances,
                  "encode_ms": (r.encode_ms or {}).get("median_ms"),
                  "decode_ms": (r.decode_ms or {}).get("median_ms")}
                 for r in results]
    return MethodSummary(
        key=method.key, family=method.family, label=method.label, params=method.params, images=len(results),
        bpp=nan_mean([r.bpp for r in results]), psnr_out=_mean_psnr([r.psnr_out for r in results]),
        msssim_out=nan_mean([r.msssim_out for r in results]),
        person=persons.to_dict(), face_mtcnn=mtcnn.to_dict(), face_centerface=centerface.to_dict(),
        found_again=found_again, leakage=leakage.to_dict(), encode_ms=_latency([r.encode_ms for r in results]),
        decode_ms=_latency([r.decode_ms for r in results]) if method.separable else float("nan"),
        per_image=per_image,
    )
