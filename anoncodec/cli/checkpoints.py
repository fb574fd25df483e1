"""``anoncodec checkpoints``: the released checkpoint ladder (``anoncodec/weights/ladder.toml``).

Also :func:`checkpoint_help`, the help text of every ``--checkpoint`` flag. Imports only
:mod:`anoncodec.weights.ladder` (stdlib), so any ``--help`` lists the names without torch.
"""

from __future__ import annotations

import argparse
import json
import os


def checkpoint_help(what: str = "codec checkpoint") -> str:
    """Help of a ``--checkpoint`` flag: what it is, the ladder's names and the default.

    Args:
        what: what the flag selects (the start of the help text).

    Returns:
        One sentence; names and default are read from the ladder, so new releases
        show up without editing any flag.
    """
    from anoncodec.errors import AnoncodecError
    from anoncodec.weights.ladder import CHECKPOINT_ENV, list_checkpoints

    try:
        entries = list_checkpoints()
    except AnoncodecError:  # --help must still work; using the flag reports the broken ladder
        names, default = "`anoncodec checkpoints` lists them", "the ladder's default"
    else:
        names = ", ".join(f"{e.name} ~{e.target_bpp:g} bpp" for e in entries)
        default = next(e.name for e in entries if e.is_default)
    return f"{what}: a released name ({names}) or a .pt file (default: ${CHECKPOINT_ENV} or {default})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the ladder as one JSON object")


def _file(entry) -> str:
    """The entry's ``.pt`` relative to the ladder folder (as written in ladder.toml)."""
    from anoncodec.weights.ladder import LADDER_FILE

    try:
        return str(entry.path.relative_to(LADDER_FILE.parent))
    except ValueError:
        return str(entry.path)


def run(args: argparse.Namespace) -> int:
    from anoncodec.weights.ladder import CHECKPOINT_ENV, LADDER_FILE, list_checkpoints

    entries = list_checkpoints()
    default = next(e.name for e in entries if e.is_default)
    override = os.environ.get(CHECKPOINT_ENV) or None
    if args.json:
        print(json.dumps({"ladder": str(LADDER_FILE), "default": default, "env": {CHECKPOINT_ENV: override},
                          "checkpoints": [{**e.to_dict(), "file": _file(e)} for e in entries]}))
        return 0
    header = ("", "name", "target_bpp", "file", "config", "description")
    rows = [header] + [("*" if e.is_default else "", e.name, f"{e.target_bpp:g}", _file(e), e.config,
                        e.description) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    note = f"${CHECKPOINT_ENV}={override!r} replaces it" if override else f"${CHECKPOINT_ENV} unset"
    print(f"\n* default when --checkpoint is not given ({note}); files are in {LADDER_FILE.parent}")
    return 0
