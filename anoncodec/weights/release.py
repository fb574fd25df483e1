"""Turn a training checkpoint into a release checkpoint (weights + tables + provenance).

    python -m anoncodec.weights.release runs/ladder-mid/last.pt anoncodec/weights/ladder_mid.pt

Drops optimizer and RNG state; keeps the codec config, the model id, the step count,
wall time, last validation and the full TrainConfig under ``meta``. An existing ``dest``
(a released checkpoint, usually committed) is replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="training checkpoint (runs/<name>/last.pt)")
    p.add_argument("dest", help="release file to write, e.g. anoncodec/weights/ladder_<name>.pt "
                                "(then add or update its [[checkpoint]] entry in anoncodec/weights/ladder.toml)")
    p.add_argument("--force", action="store_true", help="replace dest if it exists")
    args = p.parse_args(argv)
    source, dest = Path(args.source), Path(args.dest)
    if not source.is_file():
        p.error(f"source {source} does not exist")
    if dest.exists() and not args.force:
        p.error(f"{dest} exists (a released checkpoint?); pass --force to replace it")

    from anoncodec.codec import load_checkpoint, load_codec, save_checkpoint

    ckpt = load_checkpoint(source)
    model = load_codec(source)
    train_state = ckpt.get("train", {})
    meta = dict(ckpt.get("meta", {}))
    meta["train_config"] = train_state.get("config")
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dest, model, meta=meta)
    print(json.dumps({"released": str(dest), "model_id": model.model_id().hex(), "step": meta.get("step"),
                      "bytes": dest.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
