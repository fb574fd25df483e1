"""``anoncodec train``: train the codec from a TOML/YAML config."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="TOML or YAML file with [codec], [loss] and [[data]] sections and the "
                        "training fields (steps, batch_size, crop_size, lr, ...); see configs/demo.toml")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out_dir>/last.pt (optimizer, step and RNG restored)")
    parser.add_argument("--out-dir", help="override the config's out_dir")
    parser.add_argument("--steps", type=int, help="override the config's number of steps")
    parser.add_argument("--device", help="override the config's device (auto, cpu, cuda, cuda:N)")
    parser.add_argument("--cache-dir", help="where auto-annotated footage is cached "
                        "(default: $XDG_CACHE_HOME/anoncodec)")
    parser.add_argument("--no-progress", action="store_true", help="disable the progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from anoncodec.config import load_train_config
    from anoncodec.training import train

    cfg = load_train_config(args.config)
    overrides = {k: v for k, v in (("out_dir", args.out_dir), ("steps", args.steps),
                                   ("device", args.device)) if v is not None}
    if "out_dir" in overrides:
        overrides["out_dir"] = str(Path(overrides["out_dir"]).resolve())
    cfg = dataclasses.replace(cfg, **overrides) if overrides else cfg
    result = train(cfg, resume=args.resume, cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                   progress=not args.no_progress)
    print(json.dumps({"checkpoint": str(result.checkpoint), "steps": result.steps,
                      "wall_s": round(result.wall_s, 1), "validation": result.validation}))
    return 0
