"""``anoncodec evaluate``: privacy and utility of our codec against conventional baselines.

Runs every method at every rate point on the same images, caches per-image detector
outputs (an interrupted run resumes), and writes ``OUT/report.md``, ``OUT/metrics.json``,
plots and an image grid. Heavy imports happen inside :func:`run`.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from anoncodec.cli.checkpoints import checkpoint_help
from anoncodec.detectors.catalog import DEFAULT_PERSON_CONF, EVALUATION_PERSON_CLASSES

logger = logging.getLogger(__name__)

DEFAULT_METHODS = ("original", "ours", "guard", "jpeg:5,10,20,40,75", "webp:5,20,50,80", "avif:10,30,50",
                   "blur:10,40,75", "pixelate:10,40,75", "fill:10,40,75")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", required=True, metavar="SPEC",
                        help="images to evaluate (repeatable): crowdhuman:FILE.odgt, coco:FILE.json, or a "
                        "folder / image / video path (ground truth then comes from the detectors on the originals)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                        help="methods and rate points, family[:r1,r2,...]: original, ours[:CKPT,...], guard[:CKPT,...] "
                        "(ours in guaranteed mode), "
                        "jpeg|webp|avif:QUALITIES, blur|pixelate|fill:JPEG_QUALITIES (default: "
                        + " ".join(DEFAULT_METHODS) + ")")
    parser.add_argument("--out", required=True, help="folder for report.md, metrics.json, plots and grid")
    parser.add_argument("--checkpoint", help=checkpoint_help("checkpoint for a bare 'ours' and 'guard'"))
    parser.add_argument("--cache", help="per-image result cache (default: OUT/cache); reruns resume from it")
    parser.add_argument("--images", default="", help="image folder of a crowdhuman/coco spec")
    parser.add_argument("--frame-stride", type=int, default=1, help="videos: take every n-th frame")
    parser.add_argument("--max-frames", type=int, default=0, help="videos: at most n frames (0: all)")
    parser.add_argument("--max-images", type=int, default=0, help="keep the first n images of each spec (0: all)")
    parser.add_argument("--device", default="cpu", help="torch device for our codec and MTCNN (cpu, cuda)")
    parser.add_argument("--repeats", type=int, default=5, help="timed encode/decode calls per image (0: no timing)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    parser.add_argument("--timing-images", type=int, default=0, help="time only the first n images (0: all)")
    parser.add_argument("--grid-images", type=int, default=3, help="frames shown in the image grid")
    parser.add_argument("--person-model", default="",
                        help="YOLOv8 ONNX person detector (default: fall-yolov8s, the evaluation's instrument)")
    parser.add_argument("--person-classes", default=",".join(map(str, EVALUATION_PERSON_CLASSES)),
                        help="detector classes that are persons (default: fall-yolov8s' 0,1; COCO: 0)")
    parser.add_argument("--person-conf", type=float, default=DEFAULT_PERSON_CONF,
                        help="person score threshold (default: the served one)")
    parser.add_argument("--notes", help="markdown file appended to the report under 'Notes'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(_evaluate_parser=parser)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces ``args`` (every flag that differs from its default)."""
    parser: argparse.ArgumentParser = args._evaluate_parser
    parts = ["anoncodec", "evaluate"]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help",):
            continue
        value = getattr(args, action.dest, None)
        if value == action.default and action.dest != "methods":
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            parts.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for v in value:
                parts += [flag, str(v)]
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _grid_ids(groups: list[list[str]], count: int) -> list[str]:
    """Up to ``count`` image ids, taken round-robin from the data specs."""
    ids: list[str] = []
    depth = 0
    while len(ids) < count and any(depth < len(g) for g in groups):
        for g in groups:
            if depth < len(g) and len(ids) < count:
                ids.append(g[depth])
        depth += 1
    return ids


def run(args: argparse.Namespace, extra_methods=(), command: str | None = None) -> int:
    """Evaluate, write the report and print the paths of what was written.

    Args:
        args: parsed ``anoncodec evaluate`` arguments.
        extra_methods: more :class:`~anoncodec.evaluation.methods.Method` rows to run after
            those of ``--methods`` (e.g. an attacker's decoder).
        command: the command line recorded in the report (default: rebuilt from ``args``).
    """
    from anoncodec.errors import ConfigError
    from anoncodec.evaluation.benchmark import Benchmark, Detectors, DetectorSettings, summarize
    from anoncodec.evaluation.data import load_eval_data
    from anoncodec.evaluation.latency import environment
    from anoncodec.evaluation.methods import build_methods
    from anoncodec.evaluation.report import write_report
    from anoncodec.weights import resolve_checkpoint

    for name in ("frame_stride", "repeats", "warmup", "max_frames", "max_images", "timing_images", "grid_images"):
        minimum = 1 if name == "frame_stride" else 0
        if getattr(args, name) < minimum:
            raise ConfigError(f"--{name.replace('_', '-')}={getattr(args, name)}; expected an integer >= {minimum}")
    try:
        classes = tuple(int(c) for c in args.person_classes.split(",") if c.strip())
    except ValueError:
        raise ConfigError(f"--person-classes={args.person_classes!r}; expected class indices like 0,1") from None
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out / "cache"
    settings = DetectorSettings(person_conf=args.person_conf, person_classes=classes,
                                person_model=args.person_model)
    detectors = Detectors(settings, args.device)
    if args.person_model:
        detectors.yolo.cache_id = f"yolo:{Path(args.person_model).resolve()}:{classes}"

    data, items, groups = [], [], []
    seen: set[str] = set()
    for spec in args.data:
        loaded = load_eval_data(spec, args.images, args.frame_stride, args.max_frames, args.max_images,
                                cache_dir=cache / "footage", person_conf=settings.person_conf,
                                face_threshold=settings.centerface_threshold,
                                face_detector=detectors.centerface, person_detector=detectors.yolo)
        clashes = sorted(seen & {it.id for it in loaded.items})
        if clashes:
            raise ConfigError(f"--data {spec!r} repeats image ids {clashes[:3]} of an earlier spec; "
                              "give each image once")
        seen |= {it.id for it in loaded.items}
        items += loaded.items
        groups.append([it.id for it in loaded.items])
        data.append({"spec": spec, "images": len(loaded.items), "ground_truth": loaded.ground_truth,
                     "detected_ground_truth": loaded.detected_ground_truth})
    checkpoint = resolve_checkpoint(args.checkpoint)
    methods = build_methods(args.methods, checkpoint, args.device, face_detector=detectors.centerface)
    methods += list(extra_methods)
    grid_ids = _grid_ids(groups, args.grid_images)
    logger.info("evaluating %d methods/rate points on %d images", len(methods), len(items))
    bench = Benchmark(cache, settings, args.device, args.repeats, args.warmup, args.timing_images,
                      grid_ids, progress=not args.no_progress, detectors=detectors)
    results = bench.run(items, methods)
    summaries = [summarize(m, items, results[m.key], settings.match_distance, results["original"])
                 for m in methods]

    from anoncodec.data._images import load_rgb

    thumbs = {}
    for item in items:
        if item.id in grid_ids:
            folder = bench.image_dir(item, load_rgb(item.path))
            thumbs.update({(m.key, item.id): bench.grid_path(folder, m) for m in methods})
    env = environment()
    if str(args.device).startswith("cuda"):
        import torch

        env["device"] = f"{args.device}: {torch.cuda.get_device_name(0)}; {env['device']}"
    notes = Path(args.notes).read_text() if args.notes else ""
    written = write_report(out, summaries, command=command or command_line(args), data=data,
                           settings={**settings.to_dict(), "timing_repeats": args.repeats,
                                     "timing_warmup": args.warmup, "device": args.device},
                           environment=env, thumbs=thumbs, grid_images=grid_ids, notes=notes)
    for path in written.values():
        print(path)
    return 0
