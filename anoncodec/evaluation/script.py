"""The ``main`` of a benchmark script: logging, the command line it records, one-line errors.

Stdlib only (and :mod:`anoncodec.errors`).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Sequence

__all__ = ["script_main"]


def script_main(
    script: str,
    parse_args: Callable[[Sequence[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace, str], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, set up logging at ``args.log_level`` and call ``run(args, command)``.

    Args:
        script: the script's path in the repository, e.g. ``benchmarks/heldout.py``; the
            recorded command is ``python <script> <arguments>``.
        parse_args: the script's argument parser (``--help`` exits there).
        run: does the work; ``command`` is the command line to write into the results.
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        ``run``'s status, or 2 after printing an :class:`~anoncodec.errors.AnoncodecError`
        as one line ``<name>: error: ...`` on stderr.
    """
    from anoncodec.errors import AnoncodecError

    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", script, *given])
    name = script.rsplit("/", 1)[-1].removesuffix(".py")
    try:
        return run(args, command)
    except AnoncodecError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
