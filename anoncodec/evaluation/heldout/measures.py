"""Per-image measures: heads found, found again, persons kept, bits under the heads.

May import numpy, torch (inside :func:`latent_head_stats`), :mod:`anoncodec.codec`,
:mod:`anoncodec.detectors` and :mod:`anoncodec.roi`; no other module of the package.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoncodec.detectors.nms import match_boxes

#: persons on the original matched with persons on the output (greedy, one to one)
match_persons = match_boxes


def heads_found(heads_xyxy: np.ndarray, detections: np.ndarray) -> np.ndarray:
    """Which heads hold the center of some detection.

    Args:
        heads_xyxy: float ``[K, 4]`` ground-truth heads (x2, y2 exclusive).
        detections: float ``[J, 4|5]`` detections (a score column is ignored).

    Returns:
        bool ``[K]``.
    """
    heads = np.asarray(heads_xyxy, np.float32).reshape(-1, 4)
    d = np.asarray(detections, np.float32)
    d = d.reshape(d.shape[0], -1)[:, :4] if d.size else np.zeros((0, 4), np.float32)
    cx, cy = (d[:, 0] + d[:, 2]) / 2, (d[:, 1] + d[:, 3]) / 2
    inside = (
        (cx[None] >= heads[:, :1])
        & (cx[None] < heads[:, 2:3])
        & (cy[None] >= heads[:, 1:2])
        & (cy[None] < heads[:, 3:4])
    )
    return inside.any(axis=1)


@dataclass(frozen=True)
class FoundAgain:
    """Ground-truth heads one face detector finds on the originals and on the outputs.

    Attributes:
        heads: ground-truth heads.
        original: heads found on the original.
        output: heads found on the output (whether found on the original or not).
        again: heads found on both.
        new: heads found on the output only (missed on the original).
    """

    heads: int = 0
    original: int = 0
    output: int = 0
    again: int = 0
    new: int = 0

    @classmethod
    def from_masks(cls, original: np.ndarray, output: np.ndarray) -> FoundAgain:
        """From the :func:`heads_found` masks of the original and the output."""
        a, b = np.asarray(original, bool), np.asarray(output, bool)
        if a.shape != b.shape:
            raise ValueError(f"masks of {a.shape} and {b.shape}: not the same heads")
        return cls(
            int(a.size),
            int(a.sum()),
            int(b.sum()),
            int((a & b).sum()),
            int((b & ~a).sum()),
        )

    def __add__(self, other: FoundAgain) -> FoundAgain:
        return FoundAgain(
            *(
                x + y
                for x, y in zip(dataclasses.astuple(self), dataclasses.astuple(other))
            )
        )

    @property
    def share(self) -> float:
        """``again / original``: share found again (``nan``: none on the original)."""
        return self.again / self.original if self.original else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "share": self.share}


@dataclass(frozen=True)
class PersonsKept:
    """Persons a detector finds on the originals, and how many it finds again."""

    original: int = 0
    kept: int = 0

    def __add__(self, other: PersonsKept) -> PersonsKept:
        return PersonsKept(self.original + other.original, self.kept + other.kept)

    @property
    def share(self) -> float:
        return self.kept / self.original if self.original else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "share": self.share}


# ----------------------------------------------------------------- latent under heads


@dataclass(frozen=True)
class LatentHeadStats:
    """The entropy model's bits under the heads, for one image.

    Bits are ``-log2`` of the likelihood of each latent element quantized around the
    channel medians (what the coder writes), summed over channels.

    Attributes:
        head_bits: per head, the bits of the latent cells it touches (heads that share
            cells count them each).
        head_bits_total: bits of the cells under any head (each cell once).
        head_elements: latent elements (cells x channels) under any head.
        head_at_median: of those, elements whose symbol ``round(y - median)`` is 0.
        elements: latent elements of the whole image.
        at_median: of those, elements at the median.
        latent_bits: bits of the whole latent (the packet's payload, estimated).
    """

    head_bits: tuple[float, ...]
    head_bits_total: float
    head_elements: int
    head_at_median: int
    elements: int
    at_median: int
    latent_bits: float

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "head_bits": list(self.head_bits)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatentHeadStats:
        return cls(**{**data, "head_bits": tuple(data["head_bits"])})


def latent_head_stats(
    model: Any, frame_rgb: np.ndarray, heads_xyxy: np.ndarray, latent_filter: Any = None
) -> LatentHeadStats:
    """Bits and median share of a factorized-prior latent under the heads of one image.

    ``y = encoder(pad(x))`` (with the head gate, if any); ``entropy_bottleneck(y, training=False)`` quantizes around the
    medians and gives each element's likelihood; a cell is under a head when
    ``latent_cell_mask`` (margin 0) says it sees a pixel of it.

    Args:
        model: a factorized codec (``g_a``, ``pad``, ``entropy_bottleneck``,
            ``downsampling``, ``entropy_tables()``).
        frame_rgb: uint8 ``[H, W, 3]``.
        heads_xyxy: float ``[K, 4]`` heads in ``frame_rgb`` pixels.
        latent_filter: what the method does to the latent (numpy ``[M, h, w]``) before
            coding, e.g. the guard's erasure (``None``: nothing).
    """
    import torch

    from anoncodec.codec.images import frame_to_tensor
    from anoncodec.roi.loss import latent_cell_mask

    device = next(model.parameters()).device
    with torch.no_grad():
        y = model.encoder_module()(model.pad(frame_to_tensor(frame_rgb).to(device)))
        if latent_filter is not None:
            y = torch.from_numpy(latent_filter(y[0].cpu().numpy()))[None].to(y)
        _, likelihoods = model.entropy_bottleneck(y, training=False)
    bits = -torch.log2(likelihoods[0]).double().cpu()  # [M, h, w]
    medians = torch.from_numpy(np.asarray(model.entropy_tables().medians, np.float32))
    at_median = torch.round(y[0].cpu() - medians.view(-1, 1, 1)) == 0  # [M, h, w]
    hw = (int(bits.shape[-2]), int(bits.shape[-1]))
    boxes = torch.from_numpy(np.asarray(heads_xyxy, np.float32).reshape(-1, 4))
    cell_bits = bits.sum(dim=0)  # [h, w]
    per_head = tuple(
        float(cell_bits[latent_cell_mask(b, hw, model.downsampling)].sum())
        for b in boxes
    )
    union = latent_cell_mask(boxes, hw, model.downsampling)
    channels = int(bits.shape[0])
    return LatentHeadStats(
        head_bits=per_head,
        head_bits_total=float(cell_bits[union].sum()),
        head_elements=int(union.sum()) * channels,
        head_at_median=int(at_median[:, union].sum()),
        elements=int(at_median.numel()),
        at_median=int(at_median.sum()),
        latent_bits=float(cell_bits.sum()),
    )
