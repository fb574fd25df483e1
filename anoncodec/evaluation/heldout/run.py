"""Every method on every image: our checkpoints, then the baselines at their bytes.

May import numpy, tqdm, :mod:`anoncodec.codec`, :mod:`anoncodec.data`,
:mod:`anoncodec.errors`, :mod:`anoncodec.weights`, :mod:`anoncodec.evaluation.methods`,
:mod:`anoncodec.evaluation.metrics` and, of this package, ``settings``, ``data``,
``matching``, ``measures`` and ``detectors``; never ``summary`` or ``report``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.data import AnnotatedImage
from anoncodec.errors import ConfigError
from anoncodec.evaluation.heldout.data import HeldoutImage, resize_image
from anoncodec.evaluation.heldout.detectors import HeldoutDetectors, OriginalAnalysis
from anoncodec.evaluation.heldout.matching import BASELINES, Baseline, match_quality
from anoncodec.evaluation.heldout.measures import (
    FoundAgain,
    LatentHeadStats,
    PersonsKept,
    heads_found,
    latent_head_stats,
    match_persons,
)
from anoncodec.evaluation.heldout.settings import FACE_DETECTORS, PERSON_DETECTORS
from anoncodec.evaluation.methods import Method
from anoncodec.evaluation.metrics import bits_per_pixel, psnr_outside

logger = logging.getLogger(__name__)

#: ``--method`` families of our codec with the camera-side guard (longest prefix first)
GUARD_FAMILIES = ("guard+pose", "guard")


@dataclass
class OursPoint:
    """One of our checkpoints: the benchmark's :class:`Method` plus the model itself.

    Attributes:
        key: row id, ``ours:<spec>``.
        checkpoint: the resolved ``.pt``.
        method: :func:`~anoncodec.evaluation.methods.codec_method` of it (real packets).
        model: the loaded codec, for :func:`latent_head_stats`.
    """

    key: str
    checkpoint: Path
    method: Method
    model: Any
    guard: Any = None

    @classmethod
    def load(cls, spec: str, device: str = "cpu", guard_config: Any = None) -> OursPoint:
        """``spec``: a released checkpoint name or a ``.pt`` path; ``guard:<that>`` adds
        the camera-side guard (:class:`~anoncodec.edge.guard.FaceGuard` with
        ``guard_config``, default: its defaults), ``guard+pose:<that>`` the same guard
        with its pose model on."""
        from anoncodec.codec import load_codec
        from anoncodec.evaluation.methods import codec_method
        from anoncodec.weights import resolve_checkpoint

        guard, family = None, "ours"
        for prefix in GUARD_FAMILIES:
            if spec.startswith(f"{prefix}:"):
                from anoncodec.edge.guard import FaceGuard, GuardConfig

                config = dataclasses.replace(guard_config or GuardConfig(), pose=prefix == "guard+pose")
                spec, guard, family = spec.removeprefix(f"{prefix}:"), FaceGuard(config), prefix
        checkpoint = resolve_checkpoint(spec)
        model = load_codec(checkpoint, device=device)
        if model.architecture != "factorized":
            raise ConfigError(
                f"checkpoint {spec!r} holds a {model.architecture!r} model; "
                "the head-bit statistics need a 'factorized' one"
            )
        key = f"{family}:{spec}"
        return cls(key, checkpoint, codec_method(checkpoint, device, guard), model, guard)

    def latent_filter(self, frame_rgb: np.ndarray):
        """What the method does to the latent of ``frame_rgb`` before coding (or ``None``)."""
        return None if self.guard is None else self.guard.latent_filter(frame_rgb, self.model)


@dataclass
class ImageRow:
    """One method on one image.

    Attributes:
        image, method: ids.
        height, width: image size (after resizing).
        num_bytes, bpp: the file or packet.
        psnr_out: PSNR outside the heads, dB.
        faces: per face detector, :class:`FoundAgain` of this image.
        distances: dlib distance per embeddable face of the original.
        persons: per person detector, :class:`PersonsKept` of this image.
        quality: the quality a baseline was matched at (``None`` for ours).
        reference: the row a baseline was matched to.
        reference_bytes: that row's bytes on this image.
        encodes: encoder calls of the quality search.
        latent: :class:`LatentHeadStats` (ours only).
        wall_s: seconds for this row: search, encode, decode and every measurement.
    """

    image: str
    method: str
    height: int
    width: int
    num_bytes: int
    bpp: float
    psnr_out: float
    faces: dict[str, FoundAgain]
    distances: list[float]
    persons: dict[str, PersonsKept]
    quality: int | None = None
    reference: str | None = None
    reference_bytes: int | None = None
    encodes: int = 1
    latent: LatentHeadStats | None = None
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["faces"] = {k: dataclasses.asdict(v) for k, v in self.faces.items()}
        out["persons"] = {k: dataclasses.asdict(v) for k, v in self.persons.items()}
        out["latent"] = self.latent.to_dict() if self.latent else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRow:
        return cls(
            **{
                **data,
                "faces": {k: FoundAgain(**v) for k, v in data["faces"].items()},
                "persons": {k: PersonsKept(**v) for k, v in data["persons"].items()},
                "latent": LatentHeadStats.from_dict(data["latent"])
                if data.get("latent")
                else None,
            }
        )


def measure(
    image: HeldoutImage,
    original: OriginalAnalysis,
    output_rgb: np.ndarray,
    num_bytes: int,
    method: str,
    detectors: HeldoutDetectors,
) -> ImageRow:
    """Every measurement of one decoded output against its original.

    Args:
        image: the original and its boxes.
        original: what the instruments found on it.
        output_rgb: the decoded output, uint8 of the original's shape.
        num_bytes: bytes of the file or packet.
        method: row id.
        detectors: the instruments.
    """
    frame = image.frame_rgb
    if output_rgb.shape != frame.shape or output_rgb.dtype != np.uint8:
        raise ValueError(
            f"{method}: output {output_rgb.dtype} {output_rgb.shape} for a "
            f"{frame.shape} image; expected uint8 of the input's shape"
        )
    h, w = frame.shape[:2]
    faces = detectors.faces(output_rgb)
    found = {
        k: FoundAgain.from_masks(original.found[k], heads_found(image.heads_xyxy, v))
        for k, v in faces.items()
    }
    distances: list[float] = []
    if len(original.dlib_faces):
        vectors = detectors.embedder.embed(output_rgb, original.dlib_faces)
        distances = (
            np.linalg.norm(original.descriptors - vectors, axis=1).round(5).tolist()
        )
    iou = detectors.settings.person_iou
    found_persons = detectors.persons(output_rgb)
    persons = {
        k: PersonsKept(len(v), int(match_persons(v, found_persons[k], iou).sum()))
        for k, v in original.persons.items()
    }
    return ImageRow(
        image.id,
        method,
        h,
        w,
        int(num_bytes),
        bits_per_pixel(num_bytes, h, w),
        psnr_outside(output_rgb, frame, image.heads_xyxy),
        found,
        distances,
        persons,
    )


def _ours_row(
    image: HeldoutImage,
    original: OriginalAnalysis,
    point: OursPoint,
    detectors: HeldoutDetectors,
) -> ImageRow:
    start = time.perf_counter()
    data = point.method.encode(image.frame_rgb)
    row = measure(
        image, original, point.method.decode(data), len(data), point.key, detectors
    )
    row.latent = latent_head_stats(point.model, image.frame_rgb, image.heads_xyxy,
                                   point.latent_filter(image.frame_rgb))
    row.wall_s = time.perf_counter() - start
    return row


def _baseline_row(
    image: HeldoutImage,
    original: OriginalAnalysis,
    baseline: Baseline,
    reference: ImageRow,
    detectors: HeldoutDetectors,
) -> ImageRow:
    start = time.perf_counter()
    s = detectors.settings
    # the anonymizer's CenterFace pass equals the measurement's on the original
    encode = baseline.encoder(image.frame_rgb, original.faces["centerface"])
    match = match_quality(encode, reference.num_bytes, s.min_quality, s.max_quality)
    row = measure(
        image,
        original,
        baseline.decode(match.data),
        len(match.data),
        baseline.name,
        detectors,
    )
    row.quality, row.reference = match.quality, reference.method
    row.reference_bytes, row.encodes = reference.num_bytes, match.encodes
    row.wall_s = time.perf_counter() - start
    if match.over:
        logger.info(
            "%s %s: %d bytes at the lowest quality, above the %d of %s",
            image.id,
            baseline.name,
            len(match.data),
            reference.num_bytes,
            reference.method,
        )
    return row


def run_heldout(
    images: Sequence[AnnotatedImage],
    ours: Sequence[OursPoint],
    baseline_names: Sequence[str],
    reference: str | None,
    detectors: HeldoutDetectors,
    max_side: int = 640,
    progress: bool = True,
) -> tuple[dict[str, list[ImageRow]], dict[str, Any]]:
    """Every method on every image.

    Args:
        images: labeled images (see :func:`load_heldout`).
        ours: our checkpoints, one row each.
        baseline_names: keys of :data:`BASELINES`.
        reference: key of the ours row whose bytes the baselines match (``None``: the
            first).
        detectors: the instruments.
        max_side: images are shrunk to this longer side (:func:`resize_image`).
        progress: show a tqdm bar.

    Returns:
        ``(rows, originals)``: per method key its rows in image order, and totals over
        the originals (heads, heads per face detector, persons per person detector,
        embeddable faces).
    """
    from tqdm.auto import tqdm

    unknown = [b for b in baseline_names if b not in BASELINES]
    if unknown:
        raise ConfigError(
            f"unknown baselines {unknown}; expected some of {list(BASELINES)}"
        )
    if baseline_names and not ours:
        raise ConfigError(
            "baselines are matched to the bytes of one of our checkpoints; "
            "give at least one ours:<name-or-path>"
        )
    keys = [p.key for p in ours]
    reference = reference or (keys[0] if keys else None)
    if baseline_names and reference not in keys:
        raise ConfigError(f"reference {reference!r} is none of our rows {keys}")
    rows: dict[str, list[ImageRow]] = {k: [] for k in [*keys, *baseline_names]}
    totals: dict[str, Any] = {
        "images": 0,
        "heads": 0,
        "faces": {k: 0 for k in FACE_DETECTORS},
        "persons": {k: 0 for k in PERSON_DETECTORS},
        "embeddable_faces": 0,
        "resized": 0,
    }
    bar = tqdm(
        total=len(images) * len(rows),
        desc="heldout",
        unit="run",
        disable=None if progress else True,
    )
    try:
        for item in images:
            image = resize_image(item, max_side)
            original = OriginalAnalysis.of(image, detectors)
            totals["images"] += 1
            totals["resized"] += image.scale != 1.0
            totals["heads"] += len(image.heads_xyxy)
            totals["embeddable_faces"] += len(original.dlib_faces)
            for k, v in original.found.items():
                totals["faces"][k] += int(v.sum())
            for k, v in original.persons.items():
                totals["persons"][k] += len(v)
            for point in ours:
                bar.set_postfix_str(
                    f"{image.id[-24:]} {point.key[-20:]}", refresh=False
                )
                rows[point.key].append(_ours_row(image, original, point, detectors))
                bar.update(1)
            for name in baseline_names:
                bar.set_postfix_str(f"{image.id[-24:]} {name}", refresh=False)
                rows[name].append(
                    _baseline_row(
                        image, original, BASELINES[name], rows[reference][-1], detectors
                    )
                )
                bar.update(1)
    finally:
        bar.close()
    return rows, totals
