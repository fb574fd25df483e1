"""The guaranteed-mode flags (``--guard`` and ``--guard-*``), defined once for ``encode`` and ``camera``.

Defaults are :class:`~anoncodec.edge.guard.GuardConfig`'s own; :func:`guard_config` turns
the parsed flags back into one.
"""

from __future__ import annotations

import argparse

from anoncodec.cli.options import defaults_of, positive_int
from anoncodec.edge.guard import GuardConfig

__all__ = ["add_guard_arguments", "guard_config"]


def add_guard_arguments(parser: argparse.ArgumentParser, guard_default: bool | None, guard_help: str) -> None:
    """Add ``--guard/--no-guard`` (default ``guard_default``) and one flag per :class:`GuardConfig` field."""
    d = defaults_of(GuardConfig)
    group = parser.add_argument_group("guaranteed mode", "erase every head CenterFace finds from the latent "
                                      "before coding (anoncodec/edge/guard.py)")
    group.add_argument("--guard", action=argparse.BooleanOptionalAction, default=guard_default, help=guard_help)
    group.add_argument("--guard-threshold", type=float, default=d["threshold"],
                       help="CenterFace score above which --guard erases a face")
    group.add_argument("--guard-margin", type=int, default=d["margin"],
                       help="latent cells --guard erases around each head")
    group.add_argument("--guard-upscale", type=float, default=d["upscale"],
                       help="also look for faces in the image enlarged by this factor (small faces)")
    group.add_argument("--guard-max-side", type=positive_int, default=d["max_side"],
                       help="downscale images whose longer side exceeds this many pixels before looking for "
                       "faces (default: full resolution)")
    group.add_argument("--guard-pose", action=argparse.BooleanOptionalAction, default=d["pose"],
                       help="also erase the head of every person YOLO11n-pose finds (heads seen from behind or "
                       "side-on, which CenterFace misses); slower")
    group.add_argument("--guard-pose-size", type=positive_int, default=d["pose_size"],
                       help="input size of --guard-pose's model (multiple of 32; 320 is ~3x faster than 640)")
    group.add_argument("--guard-pose-conf", type=float, default=d["pose_conf"],
                       help="person score above which --guard-pose erases that person's head")


def guard_config(args: argparse.Namespace) -> GuardConfig:
    """The :class:`GuardConfig` the ``--guard-*`` flags describe (checked: ``ConfigError`` if out of range)."""
    return GuardConfig(threshold=args.guard_threshold, margin=args.guard_margin, upscale=args.guard_upscale,
                       max_side=args.guard_max_side, pose=args.guard_pose, pose_size=args.guard_pose_size,
                       pose_conf=args.guard_pose_conf)
