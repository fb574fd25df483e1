"""The privacy/utility benchmark: every method on the same images, per-image results cached.

May import numpy, torch (MTCNN, metrics), :mod:`anoncodec.detectors`, :mod:`anoncodec.data`
and the other evaluation modules; never training, serving or cli. The instruments live in
:mod:`anoncodec.evaluation.instruments`, the per-image results and the report rows in
:mod:`anoncodec.evaluation.results`; both are re-exported here.

For each image the original is analyzed once (dlib faces and descriptors for identity
leakage); then each method encodes it to bytes, decodes the bytes, and the decoded frame
is measured: bpp of the bytes, PSNR and MS-SSIM outside the head boxes, YOLO persons,
MTCNN and CenterFace faces, descriptor distance of every embeddable face, and (optionally)
encode/decode latency. One JSON file per image and method lands in the cache folder, so an
interrupted run resumes where it stopped; the key covers the image's pixels, the method's
rate point and the detector settings, so changing any of them recomputes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.data import AnnotatedImage
from anoncodec.evaluation.instruments import EVAL_VERSION, Detectors, DetectorSettings
from anoncodec.evaluation.latency import time_call
from anoncodec.evaluation.methods import Method, original_method
from anoncodec.evaluation.metrics import (
    bits_per_pixel,
    msssim_outside,
    psnr_outside,
)
from anoncodec.evaluation.results import ImageResult, MethodSummary, summarize

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

GRID_SIDE = 320  # longer side of the thumbnails kept for the report's image grid


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
        from tqdm.auto import tqdm

        from anoncodec.data._images import load_rgb

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
