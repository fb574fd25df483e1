"""Checkpoints that ship with the package (see ``MODEL_CARD.md`` beside this file)."""

from pathlib import Path

__all__ = ["DEMO_CHECKPOINT", "default_checkpoint"]

DEMO_CHECKPOINT = Path(__file__).with_name("demo_factorized.pt")


def default_checkpoint() -> Path:
    """``$ANONCODEC_CHECKPOINT`` if set, else the bundled demo checkpoint."""
    import os

    return Path(os.environ.get("ANONCODEC_CHECKPOINT", DEMO_CHECKPOINT))
