"""benchmarks/plot_heldout.py draws one curve per family from heldout.json files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _row(key, family, label, bpp, psnr, kept, again):
    return {"key": key, "family": family, "label": label, "bpp": bpp, "psnr_out": psnr,
            "persons": {"served": {"share": kept}}, "faces": {"centerface": {"share": again}}}


def test_plots_are_written_and_duplicates_dropped(tmp_path):
    spec = importlib.util.spec_from_file_location("plot_heldout", REPO / "benchmarks" / "plot_heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a = {"methods": [_row("ours-1", "ours", "ours (mid)", 0.2, 25.0, 0.8, 0.0),
                     _row("jpeg", "jpeg", "JPEG", 0.19, 27.0, 0.7, 0.9)]}
    b = {"methods": [_row("ours-1", "ours", "ours (mid)", 0.2, 25.0, 0.8, 0.0),
                     _row("ours-2", "ours", "ours (low)", 0.1, 22.0, 0.6, 0.0)]}
    paths = []
    for name, payload in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(payload))
        paths.append(tmp_path / name)
    rows = module._points(paths)
    assert sorted((r["family"], r["bpp"]) for r in rows) == [("jpeg", 0.19), ("ours", 0.1), ("ours", 0.2)]
    assert module.main([str(p) for p in paths] + ["--out", str(tmp_path / "plots")]) == 0
    for name in ("psnr_vs_bpp.png", "persons_vs_bpp.png", "faces_vs_bpp.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_guard_rows_and_the_plain_reference_get_their_own_curves(tmp_path):
    spec = importlib.util.spec_from_file_location("plot_heldout", REPO / "benchmarks" / "plot_heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    record = {"plain_rd": "ours:trunk", "methods": [
        _row("ours:mid", "ours", "ours:mid", 0.12, 25.0, 0.6, 0.7),
        _row("guard:mid", "ours", "guard:mid", 0.11, 22.0, 0.4, 0.0),
        _row("ours:trunk", "ours", "ours:trunk", 0.14, 28.0, 0.7, 0.8)]}
    (tmp_path / "r.json").write_text(json.dumps(record))
    families = {r["label"]: r["family"] for r in module._points([tmp_path / "r.json"])}
    assert families == {"ours:mid": "ours", "guard:mid": "ours + guard", "ours:trunk": "plain RD (ours:trunk)"}
