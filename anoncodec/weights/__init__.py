"""Checkpoints that ship with the package: the ladder in ``ladder.toml`` (read by
:mod:`anoncodec.weights.ladder`) and the ``.pt`` files beside it (``MODEL_CARD.md``).

Stdlib only; ``--checkpoint`` values go through :func:`resolve_checkpoint`.
"""

from pathlib import Path

from anoncodec.weights.ladder import (
    CHECKPOINT_ENV,
    LADDER_FILE,
    LadderEntry,
    default_checkpoint,
    list_checkpoints,
    resolve_checkpoint,
)

__all__ = [
    "CHECKPOINT_ENV",
    "DEMO_CHECKPOINT",
    "LADDER_FILE",
    "LadderEntry",
    "default_checkpoint",
    "list_checkpoints",
    "resolve_checkpoint",
]

# The file behind the ladder's ``demo`` entry (kept for callers that want exactly it).
DEMO_CHECKPOINT = Path(__file__).with_name("demo_factorized.pt")
