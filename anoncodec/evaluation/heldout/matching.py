"""The conventional baselines and the search for their quality at the same bytes.

May import numpy, :mod:`anoncodec.errors` and :mod:`anoncodec.evaluation.baselines`;
no other module of the package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anoncodec.errors import ConfigError
from anoncodec.evaluation import baselines


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
