"""Video quality measures: background flicker, person recall per frame, matched recall.

- :func:`flicker`: where the *original* clip stands still (a pixel's luma changes by less
  than :data:`STATIC_THRESHOLD` levels of 255 between two consecutive frames), how much the
  decoded clip changes there from frame to frame (mean absolute luma difference), next
  to the original's own change in the same pixels.
- :func:`persons_kept`: per frame, the persons a detector finds on the original that it
  finds again on the decoded frame (IoU >= 0.5, one to one:
  :func:`anoncodec.evaluation.heldout.match_persons`), summed with
  :class:`~anoncodec.evaluation.heldout.PersonsKept`; :func:`served_person_detector`
  builds the served detector with the served settings.
- :func:`cheapest_at_recall`: of a baseline's rate points, the cheapest whose person
  recall reaches a target ("at matched person recall").

May import numpy, :mod:`anoncodec.detectors` (lazily), :mod:`anoncodec.evaluation.instruments`
(lazily) and :mod:`anoncodec.evaluation.heldout.measures`; never torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoncodec.errors import ConfigError
from anoncodec.evaluation.heldout.measures import PersonsKept, match_persons

__all__ = [
    "STATIC_THRESHOLD",
    "PERSON_IOU",
    "Flicker",
    "luma",
    "flicker",
    "persons_kept",
    "served_person_detector",
    "RatePoint",
    "RecallMatch",
    "cheapest_at_recall",
]

# Luma change (levels of 255) under which a pixel of the original counts as static.
STATIC_THRESHOLD = 4.0
# IoU of a person found again.
PERSON_IOU = 0.5
_BT601 = np.asarray([0.299, 0.587, 0.114], np.float32)


def luma(frame_rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 ``[H, W, 3]`` RGB frame, float32 ``[H, W]`` in 0..255."""
    return np.asarray(frame_rgb, np.float32) @ _BT601


@dataclass(frozen=True)
class Flicker:
    """Frame-to-frame change in the original's static pixels.

    Attributes:
        decoded: mean absolute luma change of the decoded clip there (levels of 255).
        original: the same for the original (below :attr:`threshold` by construction).
        static_share: share of the pixels of all frame pairs that are static.
        threshold: the static threshold used.
    """

    decoded: float
    original: float
    static_share: float
    threshold: float

    @property
    def excess(self) -> float:
        """``decoded - original``: flicker the codec adds."""
        return self.decoded - self.original

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "excess": self.excess}


def flicker(
    original_rgb: Sequence[np.ndarray],
    decoded_rgb: Sequence[np.ndarray],
    threshold: float = STATIC_THRESHOLD,
) -> Flicker:
    """Flicker of a decoded clip in the original's static pixels (pooled over all pairs).

    A pixel of the pair ``(t, t + 1)`` is static when the original's luma changes there by
    less than ``threshold``; the decoded clip's change is measured in those pixels only.

    Args:
        original_rgb: uint8 ``[H, W, 3]`` frames of the original clip, display order.
        decoded_rgb: the decoded frames, same count and size.
        threshold: static threshold in luma levels of 255 (4: about 1.6 %).

    Returns:
        ``nan`` values where the clip has fewer than two frames or no static pixel.

    Raises:
        ConfigError: the clips differ in length or frame size, or ``threshold <= 0``.
    """
    if len(original_rgb) != len(decoded_rgb):
        raise ConfigError(
            f"{len(decoded_rgb)} decoded frames for {len(original_rgb)} original ones; "
            "expected one decoded frame per original frame"
        )
    if not threshold > 0:
        raise ConfigError(f"static threshold {threshold!r}; expected > 0 luma levels")
    dec_sum = orig_sum = 0.0
    static = total = 0
    prev_o = prev_d = None
    for o, d in zip(original_rgb, decoded_rgb):
        if np.shape(o) != np.shape(d):
            raise ConfigError(f"decoded frame {np.shape(d)} for original {np.shape(o)}")
        yo, yd = luma(o), luma(d)
        if prev_o is not None:
            do = np.abs(yo - prev_o)
            mask = do < threshold
            orig_sum += float(do[mask].sum())
            dec_sum += float(np.abs(yd - prev_d)[mask].sum())
            static += int(mask.sum())
            total += mask.size
        prev_o, prev_d = yo, yd
    nan = float("nan")
    return Flicker(
        dec_sum / static if static else nan,
        orig_sum / static if static else nan,
        static / total if total else nan,
        float(threshold),
    )


def persons_kept(
    reference: Sequence[np.ndarray],
    candidates: Sequence[np.ndarray],
    iou: float = PERSON_IOU,
) -> list[PersonsKept]:
    """Per frame, the persons of the original found again on the decoded frame.

    Sum the result (``sum(rows, PersonsKept())``) for the clip's person recall.

    Args:
        reference: per frame, float ``[K, 4|5]`` persons found on the original.
        candidates: per frame, float ``[J, 4|5]`` persons found on the decoded frame.
        iou: least IoU of a person found again.

    Raises:
        ConfigError: not one list of detections per frame on each side.
    """
    if len(reference) != len(candidates):
        raise ConfigError(
            f"person detections for {len(reference)} original and {len(candidates)} "
            "decoded frames; expected the same frames"
        )
    rows = []
    for ref, cand in zip(reference, candidates):
        kept = match_persons(ref, cand, iou)
        rows.append(PersonsKept(int(kept.size), int(kept.sum())))
    return rows


def served_person_detector() -> tuple[Any, float]:
    """The served person detector and its score threshold (the served settings of
    :class:`~anoncodec.evaluation.instruments.DetectorSettings`)."""
    from anoncodec.detectors import YoloPersonDetector
    from anoncodec.evaluation.instruments import DetectorSettings

    s = DetectorSettings()
    detector = YoloPersonDetector(
        s.person_model or None, s.person_classes, s.person_iou, s.person_input
    )
    return detector, s.person_conf


@dataclass(frozen=True)
class RatePoint:
    """One rate point of a method: its stream rate and person recall.

    Attributes:
        label: which point (e.g. ``"blur-h264:33"``).
        kbit_s: stream rate.
        recall: person recall (``nan``: no person on the original).
    """

    label: str
    kbit_s: float
    recall: float


@dataclass(frozen=True)
class RecallMatch:
    """What :func:`cheapest_at_recall` found.

    Attributes:
        target: the recall to reach.
        point: the cheapest point that reaches it; None: none does (see :attr:`reason`).
        reason: why that point, or why none.
    """

    target: float
    point: RatePoint | None
    reason: str


def cheapest_at_recall(
    points: Sequence[RatePoint], target: float, tolerance: float = 1e-9
) -> RecallMatch:
    """The cheapest rate point whose person recall is at least ``target``.

    Among points of the same rate, the higher recall wins.

    Args:
        points: a baseline's rate points (e.g. its CRF ladder), any order.
        target: the recall to reach (e.g. our codec's).
        tolerance: slack on the comparison (recalls are ratios of small counts).
    """
    if not points:
        return RecallMatch(target, None, "no rate points")
    if not math.isfinite(target):
        return RecallMatch(target, None, "the target recall is undefined (no person on "
                                         "the original)")
    valid = [p for p in points if math.isfinite(p.recall) and math.isfinite(p.kbit_s)]
    if not valid:
        return RecallMatch(target, None, "no rate point has a defined recall and rate")
    reaching = [p for p in valid if p.recall >= target - tolerance]
    if not reaching:
        best = max(valid, key=lambda p: p.recall)
        return RecallMatch(
            target, None,
            f"no rate point reaches recall {target:.3f}; the highest is "
            f"{best.recall:.3f} ({best.label}, {best.kbit_s:.1f} kbit/s): extend the ladder "
            "to lower CRFs",
        )
    point = min(reaching, key=lambda p: (p.kbit_s, -p.recall))
    reason = f"cheapest of {len(reaching)}/{len(valid)} points with recall >= {target:.3f}"
    if point.kbit_s <= min(p.kbit_s for p in valid):
        reason += ("; it is the ladder's cheapest point: a cheaper one (a higher CRF, "
                   "where the codec has one) may reach the target too")
    return RecallMatch(target, point, reason)
