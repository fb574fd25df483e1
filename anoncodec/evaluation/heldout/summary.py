"""One method's image rows pooled into a report row (:class:`MethodSummary`).

May import numpy, :mod:`anoncodec.errors`, :mod:`anoncodec.evaluation.leakage`,
:mod:`anoncodec.evaluation.metrics` and, of this package, ``measures`` and ``run`` (for
:class:`ImageRow`); never ``report``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoncodec.errors import ConfigError
from anoncodec.evaluation.heldout.measures import FoundAgain, PersonsKept
from anoncodec.evaluation.heldout.run import ImageRow
from anoncodec.evaluation.leakage import MATCH_DISTANCE, leakage_from_distances
from anoncodec.evaluation.metrics import nan_mean


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
