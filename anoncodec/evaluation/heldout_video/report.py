"""The markdown report of the held-out video benchmark, from its record.

Stdlib only (and the detector table of :mod:`anoncodec.evaluation.heldout_video.measure`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from anoncodec.evaluation.heldout_video.measure import DETECTORS

__all__ = ["markdown_report"]


def _runs(r: dict[str, Any]) -> list[str]:
    return [
        f"{r['with_face']}/{r['frames']} ({100 * r['share']:.0f}%)",
        f"{r['longest']} ({r['longest_s']:.1f} s)",
    ]


def _num(value: Any, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _table(
    summaries: Sequence[dict[str, Any]], group: str, rate: bool = True
) -> list[str]:
    header = ["method", "kbit/s", "PSNR-out (dB)"] if rate else ["method"]
    for d in DETECTORS:
        name = "CenterFace" if d == "centerface" else "MTCNN"
        header += [f"{name}: frames with a face found again", f"{name}: longest run"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for s in summaries:
        cells = [s["key"]]
        if rate:
            cells += [_num(s.get("kbit_s")), _num(s.get("psnr_out"), 2)]
        for d in DETECTORS:
            cells += _runs(s[group][d])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_report(record: dict[str, Any]) -> str:
    """``heldout_video.md`` of a record written by ``benchmarks/heldout_video.py``."""
    clip = record["clip"]
    frames, fps = record["frames"], record["fps"]
    if clip["source"] == "composite":
        what = (
            f"Composite clip of {frames} frames at {fps:g} fps "
            f"({frames / fps:.1f} s, {clip['size'][1]}x{clip['size'][0]}), only "
            f"test-split material: background `{clip['background']}`, faces "
            + ", ".join(f"`{f}`" for f in clip["faces"])
            + f", heads {clip['head_px'][0]:g}-{clip['head_px'][1]:g} px, seed "
            f"{clip['seed']}. Ground truth: {clip['ground_truth']}."
        )
    else:
        what = (
            f"Clip `{clip['video']}`, {frames} frames at {fps:g} fps "
            f"({clip['size'][1]}x{clip['size'][0]}). Ground truth: "
            f"{clip['ground_truth']}."
        )
    lines = [
        "# Held-out video: frames with a face found again",
        "",
        f"`{record['command']}`",
        "",
        f"Commit `{record['commit']}`, {record['device']}; {record['wall_s']:.0f} s.",
        "",
        what,
        "",
        "A ground-truth head is found when a detection's center lies inside it "
        "(CenterFace >= 0.2; MTCNN, every face its cascade accepts). A frame has a "
        "face found again when some head is found on the original frame and again "
        "on the decoded one; the *original* row counts frames with a head found on "
        "the original (the most any method can reach). Longest run: consecutive "
        "such frames. kbit/s: mean bytes per frame x 8 x fps. PSNR-out: outside "
        "every head"
        + (" (background heads included)" if clip["source"] == "composite" else "")
        + ", mean over frames.",
        "",
        *_table(record["summaries"], "heads"),
    ]
    bg = clip.get("background_heads") or []
    if bg:
        lines += [
            "",
            f"## The background's own faces ({len(bg)} static heads)",
            "",
            "Not part of the ground truth above; found by "
            f"{clip['background_heads_from']}. A frame counts only the background "
            "heads no pasted head overlaps there.",
            "",
            *_table(record["summaries"], "background", rate=False),
        ]
    return "\n".join(lines) + "\n"
