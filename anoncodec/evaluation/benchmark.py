"""The privacy/utility benchmark: every method on the same images, per-image results cached.

May import numpy, torch (MTCNN, metrics), :mod:`anoncodec.detectors`, :mod:`anoncodec.data`
and the other evaluation modules; never training, serving or cli.

For each image the original is analyzed once (dlib faces and descriptors for identity
leakage); then each method encodes it to bytes, decodes the bytes, and the decoded frame
is measured: bpp of the bytes, PSNR and MS-SSIM outside the head boxes, YOLO persons,
MTCNN and CenterFace faces, descriptor distance of every embeddable face, and (optionally)
encode/decode latency. One JSON file per image and method lands in the cache folder, so an
interrupted run resumes where it stopped; the key covers the image's pixels, the method's
rate point and the detector settings, so changing any of them recomputes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.data import AnnotatedImage
from anoncodec.evaluation.leakage import FaceEmbedder, leakage_from_distances
from anoncodec.evaluation.latency import time_call
from anoncodec.evaluation.methods import Method, original_method
from anoncodec.evaluation.metrics import (
    bits_per_pixel,
    detection_ap,
    msssim_outside,
    nan_mean,
    psnr_outside,
)

__all__ = [
    "EVAL_VERSION",
    "DetectorSettings",
    "Detectors",
    "ImageResult",
    "MethodSummary",
    "Benchmark",
    "summarize",
    "evaluate_method",
]

logger = logging.getLogger(__name__)

# Bump when what a cached per-image record means changes.
EVAL_VERSION = "eval-v1"
GRID_SIDE = 320  # longer side of the thumbnails kept for the report's image grid


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

    person_conf: float = 0.25
    person_iou: float = 0.45
    person_classes: tuple[int, ...] = (0, 1)
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
    def from_dict(cls, data: dict[str, Any]) -> "ImageResult":
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


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60]


def _round(boxes: np.ndarray) -> list[list[float]]:
    return np.round(np.asarray(boxes, np.float64).reshape(-1, 5), 3).tolist()


class Benchmark:
    """Runs methods over images with per-image caching.

    Args:
        cache_dir: folder for per-image JSON records (and grid thumbnails).
        settings: detector settings.
        device: torch device for MTCNN.
        timing_repeats: timed calls per image and direction (0: no timing).
        timing_warmup: untimed calls before them.
        timing_images: time only the first n images (0: all).
        grid_images: keep thumbnails of every method's output for these image ids.
        progress: show a tqdm progress bar.
        detectors: reuse existing :class:`Detectors` (built lazily otherwise).
    """

    def __init__(self, cache_dir: str | Path, settings: DetectorSettings = DetectorSettings(),
                 device: str = "cpu", timing_repeats: int = 5, timing_warmup: int = 1,
                 timing_images: int = 0, grid_images: Sequence[str] = (), progress: bool = True,
                 detectors: Detectors | None = None) -> None:
        self.root = Path(cache_dir) / f"{EVAL_VERSION}-{settings.cache_id()}"
        self.settings = settings
        self.device = device
        self.timing_repeats = int(timing_repeats)
        self.timing_warmup = int(timing_warmup)
        self.timing_images = int(timing_images)
        self.grid_images = set(grid_images)
        self.progress = progress
        self._detectors = detectors

    @property
    def detectors(self) -> Detectors:
        if self._detectors is None:
            self._detectors = Detectors(self.settings, self.device)
        return self._detectors

    def image_dir(self, item: AnnotatedImage, frame_rgb: np.ndarray) -> Path:
        """Cache folder of one image: its id plus a hash of its pixels."""
        digest = hashlib.sha256(frame_rgb.tobytes()).hexdigest()[:12]
        return self.root / f"{_safe(item.id)}-{digest}"

    def grid_path(self, item_dir: Path, method: Method) -> Path:
        return item_dir / f"{_safe(method.key)}-{method.cache_id()}.grid.png"

    def _reference(self, folder: Path, frame: np.ndarray) -> dict[str, Any]:
        """dlib faces of the original and their descriptors (cached)."""
        path = folder / "reference.json"
        if path.is_file():
            return json.loads(path.read_text())
        faces = self.detectors.embedder.detect(frame)
        vectors = self.detectors.embedder.embed(frame, faces)
        ref = {"dlib_faces": faces.tolist(), "descriptors": vectors.tolist()}
        _atomic_write(path, json.dumps(ref))
        logger.info("%s: %d embeddable face(s)", folder.name, len(faces))
        return ref

    def run(self, items: Sequence[AnnotatedImage], methods: Sequence[Method]) -> dict[str, list[ImageResult]]:
        """Evaluate every method on every image; returns ``{method key: [ImageResult]}``.

        Images are processed one at a time (each decoded once), methods in the given order.
        """
        from anoncodec.data._images import load_rgb
        from tqdm.auto import tqdm

        results: dict[str, list[ImageResult]] = {m.key: [] for m in methods}
        bar = tqdm(total=len(items) * len(methods), desc="evaluate", unit="run",
                   disable=None if self.progress else True)
        try:
            for index, item in enumerate(items):
                frame = load_rgb(item.path)
                folder = self.image_dir(item, frame)
                reference = None
                for method in methods:
                    bar.set_postfix_str(f"{item.id[:24]} {method.key}", refresh=False)
                    path = folder / f"{_safe(method.key)}-{method.cache_id()}.json"
                    grid_needed = item.id in self.grid_images and not self.grid_path(folder, method).is_file()
                    timed = self.timing_repeats > 0 and (not self.timing_images or index < self.timing_images)
                    cached = self._load(path) if not grid_needed else None
                    if cached is not None and (cached.encode_ms is not None or not timed):
                        results[method.key].append(cached)
                        bar.update(1)
                        continue
                    if reference is None:
                        reference = self._reference(folder, frame)
                    result = self._evaluate_one(item, frame, method, reference, folder, timed)
                    _atomic_write(path, json.dumps(result.to_dict()))
                    results[method.key].append(result)
                    bar.update(1)
        finally:
            bar.close()
        return results

    @staticmethod
    def _load(path: Path) -> ImageResult | None:
        if not path.is_file():
            return None
        try:
            return ImageResult.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            logger.warning("cache file %s unusable (%s); recomputing", path, exc)
            return None

    def _evaluate_one(self, item: AnnotatedImage, frame: np.ndarray, method: Method,
                      reference: dict[str, Any], folder: Path, timed: bool) -> ImageResult:
        h, w = frame.shape[:2]
        data = method.encode(frame)
        output = method.decode(data)
        if output.shape != frame.shape or output.dtype != np.uint8:
            raise ValueError(f"method {method.key!r} returned {output.dtype} {output.shape} for a "
                             f"{frame.dtype} {frame.shape} image; expected the input's shape, uint8")
        dets = self.detectors.detect(output)
        faces = np.asarray(reference["dlib_faces"], np.float32).reshape(-1, 4)
        distances: list[float] = []
        if len(faces):
            original_vectors = np.asarray(reference["descriptors"], np.float32)
            output_vectors = self.detectors.embedder.embed(output, faces)
            distances = np.linalg.norm(original_vectors - output_vectors, axis=1).round(5).tolist()
        encode_ms = decode_ms = None
        if timed:
            encode_ms = time_call(lambda: method.encode(frame), self.timing_warmup, self.timing_repeats,
                                  method.synchronize).to_dict()
            if method.separable:
                decode_ms = time_call(lambda: method.decode(data), self.timing_warmup, self.timing_repeats,
                                      method.synchronize).to_dict()
        if item.id in self.grid_images:
            _save_thumbnail(output, self.grid_path(folder, method))
        heads = item.heads_xyxy
        logger.debug("%s %s: %d bytes", item.id, method.key, len(data))
        return ImageResult(
            image=item.id, method=method.key, height=h, width=w, num_bytes=len(data),
            bpp=bits_per_pixel(len(data), h, w),
            psnr_out=psnr_outside(output, frame, heads), msssim_out=msssim_outside(output, frame, heads),
            persons=_round(dets["persons"]), mtcnn=_round(dets["mtcnn"]), centerface=_round(dets["centerface"]),
            face_distances=distances, encode_ms=encode_ms, decode_ms=decode_ms,
        )


def _save_thumbnail(frame_rgb: np.ndarray, path: Path) -> None:
    import cv2

    h, w = frame_rgb.shape[:2]
    scale = min(1.0, GRID_SIDE / max(h, w))
    small = cv2.resize(frame_rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))


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


def evaluate_method(method: Method, items: Sequence[AnnotatedImage], cache_dir: str | Path,
                    benchmark: Benchmark | None = None, **benchmark_kwargs: Any) -> MethodSummary:
    """Evaluate one method (e.g. a new attack or mode) on ``items`` and summarize it.

    Args:
        method: any :class:`Method` (see :func:`~anoncodec.evaluation.methods.callable_method`).
        items: annotated images (ground truth: persons and heads).
        cache_dir: cache folder (per-image results are reused across calls).
        benchmark: reuse a configured :class:`Benchmark` (its detectors stay loaded).
        **benchmark_kwargs: otherwise, arguments for a new :class:`Benchmark`.
    """
    bench = benchmark or Benchmark(cache_dir, **benchmark_kwargs)
    original = original_method()
    results = bench.run(items, [original, method] if method.key != original.key else [method])
    return summarize(method, items, results[method.key], bench.settings.match_distance, results[original.key])
