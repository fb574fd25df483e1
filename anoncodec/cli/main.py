"""``anoncodec`` command line: one subcommand per module in :mod:`anoncodec.cli`.

Each subcommand module imports what it needs inside ``run`` so that ``--help`` is fast
and never loads torch. An :class:`~anoncodec.errors.AnoncodecError` is printed as one
line and exits with status 2; anything else is a bug and raises.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from anoncodec import __version__
from anoncodec.errors import AnoncodecError

__all__ = ["main", "build_parser"]

# name -> module in anoncodec.cli that defines add_arguments(parser) and run(args)
SUBCOMMANDS = {
    "train": ("train", "train the codec with the ROI loss from a TOML/YAML config"),
    "encode": ("codec_io", "encode images (files or folders) into packets (PyTorch or ONNX Runtime)"),
    "decode": ("codec_io", "decode packets (files or folders) into images"),
    "export": ("export", "export a checkpoint and a person detector into a Triton model repository"),
    "serve": ("serve", "run the model repository on the local tritonserver (CPU) until Ctrl-C"),
    "camera": ("camera", "stream a video file, image folder, webcam or RTSP URL to the server (packets "
               "mode: encoded on the camera; or frames mode)"),
    "demo": ("demo", "encode/decode the bundled samples with the default checkpoint (or --checkpoint) and report"),
    "evaluate": ("evaluate", "privacy/utility benchmark of the codec against JPEG, WebP, AVIF and blur/pixelate/fill"),
    "checkpoints": ("checkpoints", "list the released checkpoints that --checkpoint accepts by name (target bpp, "
                    "file, training config)"),
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` unless the help already names its default or X is None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS, False):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anoncodec",
        description="Learned image codec that makes faces unrecognizable while persons stay "
        "detectable (ROI loss, Liebender et al. 2024).",
    )
    parser.add_argument("--version", action="version", version=f"anoncodec {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("ANONCODEC_LOG_LEVEL", "WARNING"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging verbosity (default: $ANONCODEC_LOG_LEVEL or WARNING)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(f"anoncodec.cli.{module_name}")
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=_HelpFormatter)
        getattr(module, f"add_{name}_arguments", getattr(module, "add_arguments", None))(p)
        p.set_defaults(_run=getattr(module, f"run_{name}", getattr(module, "run", None)))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``anoncodec`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except AnoncodecError as exc:
        print(f"anoncodec {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
