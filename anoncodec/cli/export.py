"""``anoncodec export``: checkpoint + person detector -> Triton model repository.

Flag defaults are :class:`~anoncodec.serving.repository.RepositoryOptions`'. The committed
``model_repository/`` holds the configs of exactly those defaults, so an export with any
other option needs its own ``--repository`` (like ``tritonserver --model-repository``,
the folder is always named by the user, never invented): without one it stops with an
error before anything is loaded or written.
"""

from __future__ import annotations

import argparse
import json

from anoncodec.cli.checkpoints import checkpoint_help
from anoncodec.cli.options import defaults_of
from anoncodec.config import ServeConfig
from anoncodec.detectors.catalog import DEFAULT_DETECTOR, DETECTORS
from anoncodec.serving.repository import BACKENDS, RepositoryOptions

__all__ = ["add_export_arguments", "repository_options", "destination", "run_export"]

# RepositoryOptions field -> the flag (argparse dest) that sets it
_OPTION_FLAGS = {
    "backend": "backend", "max_height": "max_height", "max_width": "max_width",
    "detector_height": "detector_size", "detector_width": "detector_size", "person_classes": "person_classes",
    "conf": "conf", "iou": "iou", "threads": "threads", "instances": "instances", "max_batch": "max_batch",
    "batch_delay_us": "batch_delay_us",
}


def _person_classes(text: str) -> tuple[int, ...]:
    try:
        classes = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated class indices like 0,1, got {text!r}") from None
    if not classes:
        raise argparse.ArgumentTypeError("expected at least one class index")
    return classes


def _detector_size(text: str) -> int | tuple[int, int]:
    try:
        sides = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        sides = ()
    if len(sides) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected a size S or HxW like 640 or 480x640, got {text!r}")
    return sides[0] if len(sides) == 1 else sides


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    d = defaults_of(RepositoryOptions)
    default_repo = defaults_of(ServeConfig)["repository"]
    parser.add_argument("--checkpoint", help=checkpoint_help())
    parser.add_argument("--repository",
                        help=f"model repository folder to fill (default: {default_repo}, the one `anoncodec serve` "
                        f"serves, but only when every option below is at its default: the committed "
                        f"{default_repo}/ holds those configs, so other options need a folder of their own, "
                        "and exporting them into the committed one is refused)")
    parser.add_argument("--backend", default=d["backend"], choices=list(BACKENDS),
                        help="how encoder/decoder/detector run: python (ONNX Runtime inside the python "
                        "backend; the only one the pip tritonserver has), onnxruntime (onnxruntime_onnx) "
                        "or tensorrt (tensorrt_plan; build model.plan with trtexec)")
    parser.add_argument("--detector", help="person detector: "
                        + "; ".join(f"{e.name}: {e.description} [{e.license}]" for e in DETECTORS.values())
                        + "; or a YOLOv8/YOLO11-format ONNX file, or an ultralytics .pt checkpoint when ultralytics "
                        f"is installed (default: {DEFAULT_DETECTOR}). A named detector brings its person classes")
    parser.add_argument("--person-classes", type=_person_classes, default=d["person_classes"],
                        help="detector classes that count as persons (COCO models: 0)")
    parser.add_argument("--detector-size", type=_detector_size, default=d["detector_height"],
                        help="letterbox size S or HxW (e.g. 480x640 for 4:3 frames) when the detector's input "
                        "size is dynamic (a YOLO ONNX file with a fixed input brings its own; ssd-mobilenetv2 "
                        "defaults to its native 300x300)")
    parser.add_argument("--conf", type=float, default=d["conf"], help="minimum person score")
    parser.add_argument("--iou", type=float, default=d["iou"], help="NMS IoU threshold")
    parser.add_argument("--max-height", type=int, default=d["max_height"], help="largest accepted frame height")
    parser.add_argument("--max-width", type=int, default=d["max_width"], help="largest accepted frame width")
    parser.add_argument("--threads", type=int, default=d["threads"],
                        help="ONNX Runtime intra-op threads per ONNX stage (0: ONNX Runtime's default)")
    parser.add_argument("--instances", type=int, default=d["instances"],
                        help="model instances per stage (Triton instance_group count)")
    parser.add_argument("--max-batch", type=int, default=d["max_batch"],
                        help="largest dynamic batch of encoder, decoder and detector (Triton "
                        "max_batch_size; requests of the same frame size are batched); 0 turns batching off")
    parser.add_argument("--int8", action="store_true",
                        help="serve an int8 copy of a YOLO detector (ONNX Runtime static quantization, calibrated "
                        "on real frames and checked against fp32: export fails if it finds fewer than 90%% of "
                        "the fp32 detector's persons); about 2x faster on a CPU")
    parser.add_argument("--int8-calibration",
                        help="video or image folder to calibrate --int8 on (default: data/samples/vtest_excerpt.avi)")
    parser.add_argument("--batch-delay-us", type=int, default=d["batch_delay_us"],
                        help="microseconds a request may wait for others to join its batch "
                        "(max_queue_delay_microseconds)")


def repository_options(args: argparse.Namespace) -> RepositoryOptions:
    """The :class:`RepositoryOptions` the flags describe."""
    values = {field: getattr(args, dest) for field, dest in _OPTION_FLAGS.items()}
    size = args.detector_size
    values["detector_height"], values["detector_width"] = (size, size) if isinstance(size, int) else size
    return RepositoryOptions(**values)


def destination(args: argparse.Namespace, options: RepositoryOptions) -> str:
    """``--repository``, or the default one when ``options`` are the defaults.

    Raises:
        ConfigError: no ``--repository`` while some option differs from its default.
    """
    from anoncodec.errors import ConfigError

    if args.repository is not None:
        return args.repository
    default_repo = defaults_of(ServeConfig)["repository"]
    defaults = RepositoryOptions()
    changed = dict.fromkeys(f"--{dest.replace('_', '-')}" for field, dest in _OPTION_FLAGS.items()
                            if getattr(options, field) != getattr(defaults, field))
    if args.detector not in (None, "", DEFAULT_DETECTOR):
        changed["--detector"] = None
    if changed:
        raise ConfigError(f"{', '.join(changed)} differ from the defaults whose configs the committed "
                          f"{default_repo}/ holds; pass --repository DIR (a folder of its own, which "
                          "`anoncodec serve --repository DIR` then serves)")
    return default_repo


def run_export(args: argparse.Namespace) -> int:
    from anoncodec.serving.export import export_repository

    options = repository_options(args)
    report = export_repository(args.checkpoint, destination(args, options), options, args.detector,
                               int8=args.int8, calibration=args.int8_calibration)
    print(json.dumps(report.to_dict()))
    return 0
