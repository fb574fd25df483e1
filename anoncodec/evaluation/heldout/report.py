"""The markdown report of the held-out benchmark.

May import, of this package, ``settings`` and ``summary``; nothing that loads a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from anoncodec.evaluation.heldout.settings import FACE_DETECTORS, PERSON_DETECTORS
from anoncodec.evaluation.heldout.summary import MethodSummary


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
