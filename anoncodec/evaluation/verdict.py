"""Where our codec stands against the baselines, computed from the numbers (never hand-edited),
so that a regenerated report cannot keep a stale verdict.

May import the evaluation modules ``results``, ``methods`` and ``markdown``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from anoncodec.evaluation.markdown import fmt, md_table
from anoncodec.evaluation.methods import NOT_BASELINES, OURS_FAMILIES
from anoncodec.evaluation.results import MethodSummary

__all__ = ["PRIVACY_METRICS", "RATE_SLACK", "compare", "verdict_lines"]


# Privacy metrics (lower = more private): label and how to read it from a row.
PRIVACY_METRICS = (
    ("face AP (MTCNN)", lambda s: s.face_mtcnn["ap50"]),
    ("CenterFace recall", lambda s: s.face_centerface["recall50"]),
    ("MTCNN found again", lambda s: s.found_again.get("mtcnn", float("nan"))),
    ("CenterFace found again", lambda s: s.found_again.get("centerface", float("nan"))),
    ("identity leakage", lambda s: s.leakage["leakage"]),
)
# A baseline point counts as "at a comparable rate" up to this many times our bits.
RATE_SLACK = 1.25


def _z(v: float | None) -> float:
    """``nan``/``None`` (nothing measurable) counts as 0 when comparing privacy."""
    return 0.0 if v is None or math.isnan(v) else float(v)


def _sign(ours: float, other: float, higher_is_better: bool) -> str:
    if any(v is None or math.isnan(v) for v in (ours, other)):
        return "n/a"
    if abs(ours - other) < 1e-9:
        return "tie"
    return "ours better" if (ours > other) == higher_is_better else "ours worse"


def _privacy_signs(ours: MethodSummary, other: MethodSummary) -> list[str]:
    return [_sign(_z(get(ours)), _z(get(other)), False) for _, get in PRIVACY_METRICS]


def _privacy_verdict(signs: Sequence[str]) -> str:
    better, worse = "ours better" in signs, "ours worse" in signs
    return "mixed" if better and worse else "ours better" if better else "ours worse" if worse else "tie"


def compare(ours: MethodSummary, baselines: Sequence[MethodSummary]) -> dict[str, Any]:
    """Where one ``ours`` row stands against every baseline family.

    For each family the rate point closest to ours in bpp (log scale) is compared on
    utility (person AP), fidelity (PSNR outside heads) and privacy (every metric of
    :data:`PRIVACY_METRICS`). A baseline point *dominates* ours when it needs at most
    :data:`RATE_SLACK` times our bits, detects persons at least as well and is at least as
    private on every privacy metric.
    """
    families: dict[str, list[MethodSummary]] = {}
    for b in baselines:
        families.setdefault(b.family, []).append(b)
    out: dict[str, Any] = {"method": ours.key, "rate_slack": RATE_SLACK, "versus": {}, "dominated_by": []}
    for family, rows in families.items():
        nearest = min(rows, key=lambda r: abs(math.log(max(r.bpp, 1e-9) / max(ours.bpp, 1e-9))))
        signs = _privacy_signs(ours, nearest)
        out["versus"][family] = {
            "baseline": nearest.key, "label": nearest.label, "bpp": nearest.bpp,
            "person_ap": nearest.person["ap50"], "psnr_out": nearest.psnr_out,
            "privacy": {label: get(nearest) for label, get in PRIVACY_METRICS},
            "utility_verdict": _sign(ours.person["ap50"], nearest.person["ap50"], True),
            "fidelity_verdict": _sign(ours.psnr_out, nearest.psnr_out, True),
            "privacy_signs": signs, "privacy_verdict": _privacy_verdict(signs),
        }
    for b in baselines:
        if (b.bpp <= RATE_SLACK * ours.bpp and b.person["ap50"] >= ours.person["ap50"]
                and "ours better" not in _privacy_signs(ours, b)):
            out["dominated_by"].append(b.key)
    return out


def verdict_lines(summaries: Sequence[MethodSummary]) -> list[str]:
    """The report's closing section: every ``ours`` row against the baselines, in words."""
    ours_rows = [s for s in summaries if s.family in OURS_FAMILIES]
    base = [s for s in summaries if s.family not in NOT_BASELINES]
    original = next((s for s in summaries if s.family == "original"), None)
    if not ours_rows or not base:
        return ["(no learned-codec row or no baseline: nothing to compare)"]
    lines: list[str] = []
    for ours in ours_rows:
        cmp = compare(ours, base)
        lines.append(f"### {ours.label} at {fmt(ours.bpp)} bpp\n")
        rows = [["**ours**", fmt(ours.bpp), fmt(ours.person["ap50"]), fmt(ours.psnr_out, 1)]
                + [fmt(get(ours)) for _, get in PRIVACY_METRICS]]
        for v in cmp["versus"].values():
            rows.append([v["label"], fmt(v["bpp"]), f"{fmt(v['person_ap'])} ({v['utility_verdict']})",
                         f"{fmt(v['psnr_out'], 1)} ({v['fidelity_verdict']})"]
                        + [f"{fmt(v['privacy'][label])} ({sign})"
                           for (label, _), sign in zip(PRIVACY_METRICS, v["privacy_signs"])])
        lines.append("Each baseline at its rate point nearest ours (verdicts from our side; privacy metrics: "
                     "lower = more private):\n")
        lines.append(md_table(["method", "bpp", "person AP", "PSNR-out"] + [label for label, _ in PRIVACY_METRICS],
                            rows))
        lines.append("")
        versus = list(cmp["versus"].values())

        def named(cond, versus=versus) -> str:
            return ", ".join(v["label"] for v in versus if cond(v))

        if original is not None:
            lines.append(f"- **Utility**: ours keeps person AP {fmt(ours.person['ap50'])} of the original's "
                         f"{fmt(original.person['ap50'])}.")
        losers = named(lambda v: v["utility_verdict"] == "ours worse")
        if losers:
            lines.append(f"- **Ours loses on utility** (person AP) to {losers}.")
        winners = named(lambda v: v["utility_verdict"] in ("ours better", "tie"))
        if winners:
            lines.append(f"- Ours detects persons at least as well as {winners}.")
        if named(lambda v: v["fidelity_verdict"] == "ours worse"):
            lines.append(f"- **Ours loses on fidelity** (PSNR outside heads) to "
                         f"{named(lambda v: v['fidelity_verdict'] == 'ours worse')}.")
        for verdict, text in (("ours better", "more private than"), ("tie", "exactly as private as"),
                              ("ours worse", "**less private** than"), ("mixed", "neither more nor less private "
                                                                        "(mixed metrics) than")):
            who = named(lambda v, verdict=verdict: v["privacy_verdict"] == verdict)
            if who:
                lines.append(f"- **Privacy**: ours is {text} {who}.")
        if cmp["dominated_by"]:
            labels = ", ".join(s.label for s in base if s.key in cmp["dominated_by"])
            lines.append(f"- **Dominated by {labels}**: at most {RATE_SLACK:g}x our bits, at least our person AP "
                         "and at least our privacy on every privacy metric. On these images the conventional "
                         "pipeline is a better choice than this checkpoint.")
        else:
            lines.append(f"- No baseline point dominates ours (at most {RATE_SLACK:g}x our bits, at least our person "
                         "AP *and* at least our privacy on every privacy metric).")
        lines.append("")
    return lines
