"""Our codec as a video sequence (conditional replenishment) behind the :class:`Method` interface.

May import torch (through :mod:`anoncodec.codec`), :mod:`anoncodec.replenish`,
:mod:`anoncodec.edge.sequence` and :mod:`anoncodec.evaluation.methods`. The method is
stateful: call ``encode`` and ``decode`` once per frame, in frame order, as a camera and
the server would.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.evaluation.methods import Method
from anoncodec.replenish import ReplenishConfig

__all__ = ["stream_method"]


class _TorchLatents:
    """What :class:`~anoncodec.edge.sequence.SequenceEncoder` needs from an encoder, in PyTorch."""

    def __init__(self, model: Any, guard: Any, device: str) -> None:
        self.model, self.guard, self.device = model, guard, device
        self.tables = model.entropy_tables()

    def guarded_latent(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        from anoncodec.codec.images import frame_to_tensor

        with torch.no_grad():
            x = self.model.pad(frame_to_tensor(frame_rgb).to(self.device))
            y = self.model.encoder_module()(x)[0].cpu().numpy()
        if self.guard is None:
            return y, None
        y, mask, _ = self.guard.erase_cells(frame_rgb, y, self.model.downsampling, self.tables.medians)
        return y, mask


def stream_method(checkpoint: str | Path, device: str = "cpu", guard: Any = None,
                  config: ReplenishConfig = ReplenishConfig(), guard_hold: int = 1, hold_grow: int = 0) -> Method:
    """Our codec coding a clip as one sequence: keyframes and deltas (real version-2 packets).

    Args:
        checkpoint: a released name or a path.
        device: torch device.
        guard: a :class:`~anoncodec.edge.guard.FaceGuard` (None: no guard).
        config: keyframe interval and change threshold.
        guard_hold: frames the guard's cells stay erased after a head was last found.
        hold_grow: cells the held cells grow by.
    """
    import torch

    from anoncodec.codec import load_codec
    from anoncodec.codec.images import tensor_to_frame
    from anoncodec.edge.sequence import SequenceEncoder
    from anoncodec.packet import pack, unpack
    from anoncodec.replenish import ReplenishDecoder
    from anoncodec.weights import resolve_checkpoint

    checkpoint = resolve_checkpoint(str(checkpoint))
    model = load_codec(checkpoint, device=device)
    model_id = model.model_id().hex()
    encoder = SequenceEncoder(_TorchLatents(model, guard, device), config, guard_hold=guard_hold,
                             hold_grow=hold_grow)
    decoder = ReplenishDecoder(model.entropy_tables())

    def encode(frame: np.ndarray) -> bytes:
        return pack(encoder.encode(frame))

    def decode(data: bytes) -> np.ndarray:
        packet = unpack(data)
        y_hat = decoder.decode(packet)
        with torch.no_grad():
            x_hat = model.g_s(torch.from_numpy(y_hat)[None].to(device))
        return tensor_to_frame(x_hat[..., : packet.height, : packet.width])

    params = {"checkpoint": checkpoint.name, "model_id": model_id, "codec": model.config.to_dict(),
              "device": device, "replenish": dataclasses.asdict(config), "guard_hold": guard_hold,
              "hold_grow": hold_grow}
    name, label = "stream", "ours, stream"
    if guard is not None:
        params["guard"] = dataclasses.asdict(guard.config)
        name, label = "guard-stream", "ours + guard, stream"
    return Method(f"{name}-{model_id[:8]}", name, f"{label} ({checkpoint.stem})", encode, decode, params)
