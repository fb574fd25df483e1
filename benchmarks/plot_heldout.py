"""Plots of held-out results: PSNR outside heads, persons kept and faces found again vs bpp.

    .venv/bin/python benchmarks/plot_heldout.py docs/results/heldout/heldout.json [more.json ...] \
        --out docs/results/heldout

Every method row of every given ``heldout.json`` (benchmarks/heldout.py) is one point;
rows of one family (ours, JPEG, AVIF, blur + AVIF, ...) are joined in bpp order, so a
rate ladder and the baselines matched to each of its points read as curves. Writes
``psnr_vs_bpp.png``, ``persons_vs_bpp.png`` and ``faces_vs_bpp.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path


def _family(method: dict, plain_rd: str | None) -> str:
    """The curve a row belongs to: our rungs, our rungs with the guard, the plain-RD
    reference (its own point) or the baseline's family."""
    if method["family"] != "ours":
        return method["family"]
    if method["key"] == plain_rd or "plain" in method["label"]:
        return f"plain RD ({method['label']})"
    if method["key"].startswith("guard+pose:"):
        return "ours + guard + pose"
    return "ours + guard" if method["key"].startswith("guard:") else "ours"


def _points(paths: Sequence[Path]) -> list[dict]:
    rows, seen = [], set()
    for path in paths:
        record = json.loads(path.read_text())
        for m in record["methods"]:
            key = (m["key"], round(m["bpp"], 4))
            if key in seen:
                continue
            seen.add(key)
            family = _family(m, record.get("plain_rd"))
            rows.append({"family": family, "label": m["label"], "bpp": m["bpp"], "psnr": m["psnr_out"],
                         "persons": {k: v["share"] for k, v in m["persons"].items()},
                         "faces": {k: v["share"] for k, v in m["faces"].items()}})
    return rows


def _plot(rows: list[dict], value, ylabel: str, title: str, dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    families: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        families[r["family"]].append(r)
    for family, pts in sorted(families.items()):
        pts = sorted(pts, key=lambda r: r["bpp"])
        style = "o-" if family.startswith("ours") else "s--"
        ax.plot([p["bpp"] for p in pts], [value(p) for p in pts], style, label=family, markersize=5)
    ax.set_xlabel("bits per pixel (real files / packets)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dest, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="heldout.json files")
    parser.add_argument("--out", default="docs/results/heldout", help="folder of the PNGs")
    args = parser.parse_args(argv)
    rows = _points([Path(p) for p in args.results])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(rows, lambda r: r["psnr"], "PSNR outside heads (dB)", "Fidelity outside the heads, held-out test split",
          out / "psnr_vs_bpp.png")
    _plot(rows, lambda r: r["persons"].get("served", float("nan")), "persons kept (served detector)",
          "Persons found again on the output", out / "persons_vs_bpp.png")
    _plot(rows, lambda r: r["faces"].get("centerface", float("nan")), "faces found again (CenterFace 0.2)",
          "Faces found again on the output (lower is more private)", out / "faces_vs_bpp.png")
    for name in ("psnr_vs_bpp.png", "persons_vs_bpp.png", "faces_vs_bpp.png"):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
