"""Turn a training checkpoint into a release checkpoint (weights + tables + provenance).

    python -m anoncodec.weights.release runs/demo/last.pt [anoncodec/weights/demo_factorized.pt]

Drops optimizer and RNG state; keeps the codec config, the model id, the step count,
wall time, last validation and the full TrainConfig under ``meta``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="training checkpoint (last.pt)")
    p.add_argument("dest", nargs="?", default=str(Path(__file__).with_name("demo_factorized.pt")))
    args = p.parse_args(argv)

    from anoncodec.codec import load_checkpoint, load_codec, save_checkpoint

    ckpt = load_checkpoint(args.source)
    model = load_codec(args.source)
    train_state = ckpt.get("train", {})
    meta = dict(ckpt.get("meta", {}))
    meta["train_config"] = train_state.get("config")
    save_checkpoint(args.dest, model, meta=meta)
    print(json.dumps({"released": args.dest, "model_id": model.model_id().hex(), "step": meta.get("step"),
                      "bytes": Path(args.dest).stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
