"""The markdown report and the rate/recall plot of the video stream benchmark, from its record.

Stdlib only; :func:`plot_rate_recall` imports matplotlib (``eval`` extra).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["markdown_report", "plot_rate_recall"]


def _num(value: Any, digits: int = 1) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _row(s: dict[str, Any]) -> list[str]:
    f, p, fl = s["faces"], s["persons"], s["flicker"]
    return [
        s["label"] if s["role"] == "original" else f"`{s['key']}`",
        _num(s.get("kbit_s")),
        _num(s.get("psnr_out"), 2),
        f"{f['with_face']}/{f['frames']} ({100 * f['share']:.0f}%)",
        f"{f['longest']} ({f['longest_s']:.1f} s)",
        f"{_num(fl['decoded'], 2)} ({fl['excess']:+.2f})" if s["role"] != "original"
        else _num(fl["original"], 2),
        f"{p['kept']}/{p['original']} ({_num(100 * p['share'], 1)}%)",
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


#: stream kind -> the intra-only kind of the same guard setting
_INTRA_OF = {"ours-stream": "ours", "ours-stream-noguard": "ours-noguard"}


def _against_intra(summaries: list[dict[str, Any]]) -> list[str]:
    """Each stream row against the intra-only row of its checkpoint and guard setting."""
    rows = []
    for s in summaries:
        intra_kind = _INTRA_OF.get(s.get("kind", ""))
        if intra_kind is None:
            continue
        checkpoint = s["value"].rpartition("@")[0] if "@" in s["value"] else s["value"]
        intra = next((i for i in summaries if i.get("kind") == intra_kind and i["value"] == checkpoint), None)
        if intra is None or not intra.get("kbit_s"):
            continue
        rows.append([f"`{s['key']}`", f"`{intra['key']}`", _num(s["kbit_s"] / intra["kbit_s"], 2) + "x",
                     _num(s["psnr_out"] - intra["psnr_out"], 2),
                     f"{s['persons']['kept']} vs {intra['persons']['kept']}"])
    if not rows:
        return []
    return ["", "## Against intra-only coding", "",
            "Each sequence against every frame coded alone by the same checkpoint with the same guard "
            "setting: its share of the bitrate, the PSNR-out it loses (dB) and the persons kept.", "",
            *_table(["stream", "intra", "kbit/s ratio", "PSNR-out change", "persons kept"], rows)]


def markdown_report(record: dict[str, Any]) -> str:
    """``video_stream.md`` of a record written by ``benchmarks/video_stream.py``."""
    clip, frames, fps = record["clip"], record["frames"], record["fps"]
    size = f"{clip['size'][1]}x{clip['size'][0]}"
    if clip["source"] == "composite":
        what = (f"Composite clip of held-out faces over `{clip['background']}`, {frames} "
                f"frames at {fps:g} fps ({size}). Ground truth: {clip['ground_truth']}.")
    else:
        what = (f"Clip `{clip['video']}`, first {frames} frames at {fps:g} fps ({size}). "
                f"Ground truth heads: {clip['ground_truth']}.")
    summaries = record["summaries"]
    lines = [
        "# Video streams: faces found again, flicker and person recall per bitrate",
        "",
        f"`{record['command']}`",
        "",
        f"Commit `{record['commit']}`, {record['device']}; {record['wall_s']:.0f} s.",
        "",
        what,
        "",
        "kbit/s: every byte of the stream (codec headers + packets; ours: the packets) x "
        f"8 x {fps:g} fps / frames. PSNR-out: outside the ground-truth heads, mean over "
        "frames. A frame has a face found again when CenterFace (>= 0.2) finds a "
        "ground-truth head on the original and again on the decoded frame (a head is "
        "found when a detection's center lies inside it); the original row counts "
        "frames with a head found. Longest run: consecutive such frames. Flicker: mean "
        "absolute frame-to-frame luma change (levels of 255) in the pixels where the "
        f"original changes by less than {record['static_threshold']:g} levels "
        f"({_num(100 * summaries[0]['flicker']['static_share'], 0)}% of the pixels); in "
        "brackets the change the codec adds to the original's. Person recall: persons "
        f"the served detector (conf {record['person_conf']:g}) finds on the original "
        "frames and again on the decoded ones (IoU >= 0.5, one to one), summed over "
        "frames.",
        "",
        *_table(["method", "kbit/s", "PSNR-out (dB)", "frames with a face found again",
                 "longest run", "flicker", "person recall"],
                [_row(s) for s in summaries]),
    ]
    lines += _against_intra(summaries)
    matched = record.get("matched_recall") or []
    if matched:
        rows = []
        for m in matched:
            rows.append([
                f"`{m['ours']}`", _num(m["ours_kbit_s"]), _num(100 * m["target"], 1) + "%",
                f"`{m['baseline']}`",
                f"`{m['key']}`" if m["key"] else "none",
                _num(m["kbit_s"]), _num(100 * m["recall"], 1) + "%" if m["key"] else "–",
                _num(m["ratio"], 2) + "x" if m["ratio"] else "–", m["reason"],
            ])
        lines += [
            "",
            "## At matched person recall",
            "",
            "Per baseline, the cheapest point of its CRF ladder whose person recall is at "
            "least ours; ratio: its kbit/s over ours.",
            "",
            *_table(["ours", "kbit/s", "recall", "baseline", "cheapest point", "kbit/s",
                     "recall", "ratio", "note"], rows),
        ]
    if record.get("plot"):
        lines += ["", f"![kbit/s against person recall]({record['plot']})"]
    return "\n".join(lines) + "\n"


def plot_rate_recall(record: dict[str, Any], path: str | Path) -> Path:
    """kbit/s (log) against person recall: one line per baseline kind, a marker per ours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    kinds: dict[str, list[tuple[float, float, str]]] = {}
    for s in record["summaries"]:
        if s["role"] == "baseline":
            kinds.setdefault(s["kind"], []).append(
                (s["kbit_s"], s["persons"]["share"], s["value"]))
    for kind, points in kinds.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=kind, ms=4)
        for x, y, crf in points:
            ax.annotate(crf, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    for s in record["summaries"]:
        if s["role"] == "ours":
            ax.plot([s["kbit_s"]], [s["persons"]["share"]], "*", ms=12, label=s["key"])
    ax.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("stream kbit/s")
    ax.set_ylabel("person recall (served detector)")
    clip = record["clip"]
    name = Path(clip["video"]).name if clip["source"] == "video" else "composite faces"
    ax.set_title(f"{name}, {record['frames']} frames at {record['fps']:g} fps", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
