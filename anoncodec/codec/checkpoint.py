"""Checkpoints that describe themselves: config, weights, entropy tables and model id.

A checkpoint is a ``torch.save`` dict::

    {"format": "anoncodec-checkpoint", "version": 1,
     "codec": CodecConfig.to_dict(), "state_dict": ..., "model_id": hex,
     "meta": {...},            # free-form provenance (steps, data, metrics)
     "train": {...}}           # optional: optimizer states, step, TrainConfig, RNG

Writes are atomic (temporary file + ``os.replace``) so a crash or Ctrl-C never leaves a
half-written checkpoint behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from anoncodec.codec.models import RoiCodec
from anoncodec.codec.registry import get_model
from anoncodec.config import CodecConfig
from anoncodec.errors import ConfigError

__all__ = ["save_checkpoint", "load_checkpoint", "load_codec", "atomic_torch_save"]

FORMAT = "anoncodec-checkpoint"
VERSION = 1


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: str | Path,
    model: RoiCodec,
    meta: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> None:
    """Save ``model`` (with up-to-date entropy tables) and optional training state."""
    was_training = model.training
    model.update(force=True)
    model.train(was_training)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "codec": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_id": model.model_id().hex(),
        "meta": meta or {},
    }
    if train is not None:
        payload["train"] = train
    atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check a checkpoint dict (no model is built)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an anoncodec checkpoint (format tag missing)")
    if ckpt.get("version") != VERSION:
        raise ConfigError(f"{path}: checkpoint version {ckpt.get('version')}, this build reads {VERSION}")
    return ckpt


def load_codec(path: str | Path, device: str | torch.device = "cpu") -> RoiCodec:
    """Build the model a checkpoint describes, load its weights and tables, eval mode."""
    ckpt = load_checkpoint(path)
    model = get_model(CodecConfig.from_dict(ckpt["codec"]))
    model.load_state_dict(ckpt["state_dict"])
    model.update()  # no-op when the checkpoint carries tables (it always should)
    model.eval().to(device)
    if model.model_id().hex() != ckpt["model_id"]:
        raise ConfigError(f"{path}: weights do not match the stored model id {ckpt['model_id']}")
    return model
