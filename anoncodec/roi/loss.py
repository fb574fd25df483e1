"""The region-of-interest loss and the full training objective (docs/ARCHITECTURE.md, section 3).

Imports torch and :mod:`anoncodec.config` only. For an image with boxes ``B``::

    l_k(b) = | k - MSE(x_hat[b], x[b]) |      (x, x_hat in [0, 1], so MSE <= 1)
    L_k    = mean over the batch of ( mean over the image's boxes of l_k(b) )

Images without boxes contribute 0 to the batch mean. ``k = 0`` asks for fidelity inside
the boxes, ``k = 1`` rewards error there, i.e. anonymizes.

The ROI terms act on the *output*: a decoder trained with them hides the face, but the
bitstream may still carry it. :func:`head_rate` acts on the *latent*: the bits of every
latent cell under a head box (``-log2`` of the entropy model's likelihoods, summed over
channels), so the encoder learns to write the entropy model's medians there, and no
decoder can bring back what the packet does not hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from anoncodec.config import RoiLossConfig

__all__ = [
    "roi_loss",
    "bpp_from_likelihoods",
    "latent_cell_mask",
    "head_rate",
    "head_median_distance",
    "head_cells",
    "gate_loss",
    "fill_heads",
    "RoiObjective",
    "ObjectiveTerms",
]


def _box_slices(box: Tensor, height: int, width: int) -> tuple[slice, slice] | None:
    """Integer pixel slices of a clipped ``xyxy`` box, or ``None`` when it is empty."""
    x1 = max(0, min(width, int(math.floor(float(box[0])))))
    y1 = max(0, min(height, int(math.floor(float(box[1])))))
    x2 = max(0, min(width, int(math.ceil(float(box[2])))))
    y2 = max(0, min(height, int(math.ceil(float(box[3])))))
    if x2 <= x1 or y2 <= y1:
        return None
    return slice(y1, y2), slice(x1, x2)


def roi_loss(x_hat: Tensor, x: Tensor, boxes: Sequence[Tensor], k: float) -> Tensor:
    """ROI loss ``L_k`` of a batch.

    Args:
        x_hat: reconstruction, float ``[B, C, H, W]`` in [0, 1].
        x: original, same shape.
        boxes: per image a ``[K_i, 4]`` tensor of ``xyxy`` pixel boxes (may be empty);
            boxes are clipped to the image, boxes empty after clipping are ignored.
        k: target MSE inside the boxes (0 = fidelity, 1 = destroy).

    Returns:
        Scalar tensor: per box ``|k - MSE|``, averaged per image over its boxes, then over
        the batch (images without boxes count as 0).
    """
    if x_hat.shape != x.shape or x.dim() != 4:
        raise ValueError(f"x_hat {tuple(x_hat.shape)} and x {tuple(x.shape)} must be equal [B,C,H,W]")
    if len(boxes) != x.shape[0]:
        raise ValueError(f"got box lists for {len(boxes)} images, batch has {x.shape[0]}")
    height, width = x.shape[-2:]
    per_image = []
    for i, image_boxes in enumerate(boxes):
        terms = []
        for box in image_boxes:
            sl = _box_slices(box, height, width)
            if sl is None:
                continue
            mse = torch.mean((x_hat[i, :, sl[0], sl[1]] - x[i, :, sl[0], sl[1]]) ** 2)
            terms.append(torch.abs(k - mse))
        per_image.append(torch.stack(terms).mean() if terms else x_hat.new_zeros(()))
    return torch.stack(per_image).mean()


def bpp_from_likelihoods(likelihoods: dict[str, Tensor], num_pixels: int) -> Tensor:
    """Estimated bits per pixel: ``sum(-log2 p) / pixels`` over every latent's likelihoods."""
    total = sum(torch.log(lk).sum() for lk in likelihoods.values())
    return total / (-math.log(2) * num_pixels)


def latent_cell_mask(
    boxes: Tensor, latent_hw: tuple[int, int], factor: int, margin: int = 0
) -> Tensor:
    """Latent cells that see any pixel of the boxes (the torch twin of the guard's mask).

    Args:
        boxes: float ``[K, 4]`` ``xyxy`` boxes in (padded) image pixels.
        latent_hw: ``(h, w)`` of the latent; cell ``(i, j)`` covers pixels
            ``[i*factor, (i+1)*factor) x [j*factor, (j+1)*factor)``.
        factor: the codec's downsampling factor.
        margin: cells added on every side of each box's cells.

    Returns:
        bool ``[h, w]`` on ``boxes.device``.
    """
    h, w = latent_hw
    mask = torch.zeros(h, w, dtype=torch.bool, device=boxes.device)
    for x1, y1, x2, y2 in boxes.reshape(-1, 4).tolist():
        if not (x2 > x1 and y2 > y1):
            continue
        r0 = max(0, math.floor(y1 / factor) - margin)
        c0 = max(0, math.floor(x1 / factor) - margin)
        r1 = min(h, math.ceil(y2 / factor) + margin)
        c1 = min(w, math.ceil(x2 / factor) + margin)
        if r1 > r0 and c1 > c0:
            mask[r0:r1, c0:c1] = True
    return mask


def _sum_under_heads(
    values: Tensor, heads: Sequence[Tensor], factor: int, margin: int
) -> tuple[Tensor, int]:
    """Sum of ``values [B, C, h, w]`` over the channels and latent cells under each image's
    heads, and the number of those cells."""
    hw = (int(values.shape[-2]), int(values.shape[-1]))
    total = values.new_zeros(())
    cells = 0
    for i, boxes in enumerate(heads):
        if boxes.numel() == 0:
            continue
        mask = latent_cell_mask(boxes, hw, factor, margin)
        n = int(mask.sum())
        if n:
            total = total + values[i][:, mask].sum()
            cells += n
    return total, cells


def head_rate(
    likelihoods: Tensor, heads: Sequence[Tensor], factor: int, margin: int = 0
) -> tuple[Tensor, Tensor]:
    """Bits the latent spends under head boxes.

    Args:
        likelihoods: ``[B, M, h, w]`` likelihoods of ``y_hat`` (``forward``'s
            ``likelihoods["y"]``).
        heads: per image a ``[K_i, 4]`` tensor of ``xyxy`` head boxes in image pixels.
        factor: downsampling factor between image and latent.
        margin: extra cells around each head's cells.

    Returns:
        ``(bits_per_cell, cells)``: mean over the batch's head cells of the bits summed
        over channels (0 when no image has a head), and the number of head cells.
    """
    if likelihoods.dim() != 4 or len(heads) != likelihoods.shape[0]:
        raise ValueError(f"likelihoods {tuple(likelihoods.shape)} with {len(heads)} box lists; "
                         "expected [B, M, h, w] and B lists")
    bits, cells = _sum_under_heads(-torch.log2(likelihoods), heads, factor, margin)
    count = likelihoods.new_tensor(float(cells))
    return (bits / cells if cells else bits), count


def head_median_distance(
    y: Tensor, medians: Tensor, heads: Sequence[Tensor], factor: int, margin: int = 0
) -> Tensor:
    """Mean squared distance of the latent under head boxes from the channel medians.

    The rate under a head is lowest when every element there rounds to the median
    (symbol 0); this pulls the encoder there directly. Early in training the entropy
    model is still broad, so the likelihoods alone barely tell the encoder where to go.

    Args:
        y: ``[B, M, h, w]`` latent before quantization.
        medians: ``[M]`` per-channel medians of the entropy model.
        heads: per image a ``[K_i, 4]`` tensor of ``xyxy`` head boxes in image pixels.
        factor: downsampling factor between image and latent.
        margin: extra cells around each head's cells.

    Returns:
        Scalar: mean over head cells and channels of ``(y - median)**2`` (0 without heads).
    """
    sq = (y - medians.reshape(1, -1, 1, 1)) ** 2
    total, cells = _sum_under_heads(sq, heads, factor, margin)
    return total / (cells * int(y.shape[1])) if cells else total


def head_cells(heads: Sequence[Tensor], latent_hw: tuple[int, int], factor: int) -> Tensor:
    """bool ``[B, h, w]``: per image the latent cells under its head boxes (margin 0)."""
    h, w = latent_hw
    if not heads:
        return torch.zeros(0, h, w, dtype=torch.bool)
    return torch.stack([latent_cell_mask(b, latent_hw, factor) for b in heads])


def gate_loss(logits: Tensor, target: Tensor, pos_weight: float) -> Tensor:
    """Binary cross-entropy of the head gate's ``[B, h, w]`` logits against the bool
    ``target`` cells, positives weighted by ``pos_weight``."""
    if logits.shape != target.shape:
        raise ValueError(f"gate logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target.to(logits.dtype), pos_weight=logits.new_tensor(float(pos_weight)))


def fill_heads(x: Tensor, heads: Sequence[Tensor]) -> Tensor:
    """``x`` with every head box replaced by its mean colour (the target of an erased head)."""
    out = x.clone()
    height, width = x.shape[-2:]
    for i, boxes in enumerate(heads):
        for box in boxes:
            sl = _box_slices(box, height, width)
            if sl is not None:
                out[i, :, sl[0], sl[1]] = x[i, :, sl[0], sl[1]].mean(dim=(-2, -1), keepdim=True)
    return out


@dataclass
class ObjectiveTerms:
    """Every term of the objective, for logging; ``loss`` is what is minimized."""

    loss: Tensor
    mse: Tensor
    person_roi: Tensor
    head_roi: Tensor
    bpp: Tensor
    head_bits: Tensor  # bits per latent cell under heads (see :func:`head_rate`)
    head_median: Tensor  # see :func:`head_median_distance` (0 when not computed)
    gate: Tensor  # see :func:`gate_loss` (0 without a gate)


class RoiObjective(torch.nn.Module):
    """``L = w_mse*MSE + w_p*L_{k_p}(persons) + w_h*L_{k_h}(heads) + w_r*bpp
    + w_hr*head_bits + w_hm*head_median + w_g*gate``.

    With ``head_target="fill"`` every term compares with :func:`fill_heads` of ``x``: with
    ``head_k = 0`` the head ROI term then asks for the flat patch inside head boxes.

    ``head_bits`` (:func:`head_rate`) is in bits per latent cell; ``bpp`` in bits per
    pixel, i.e. per ``1/f**2`` cell, so ``w_hr = w_r / f**2`` would price head cells like
    the rest; the configured ``head_rate_weight`` sits orders of magnitude above that.

    The entropy bottleneck's auxiliary (quantile) loss is *not* included: it is
    minimized by its own optimizer (see :mod:`anoncodec.training.optim`).
    """

    def __init__(self, config: RoiLossConfig | None = None, factor: int = 16) -> None:
        super().__init__()
        self.config = config or RoiLossConfig()
        self.factor = int(factor)

    def forward(
        self,
        x_hat: Tensor,
        x: Tensor,
        likelihoods: dict[str, Tensor],
        persons: Sequence[Tensor],
        heads: Sequence[Tensor],
        y: Tensor | None = None,
        medians: Tensor | None = None,
        gate_logits: Tensor | None = None,
    ) -> ObjectiveTerms:
        """Compute every term; inputs as in :func:`roi_loss`; ``likelihoods``, ``y``,
        ``medians`` and ``gate_logits`` from the model's ``forward`` (``y``/``medians``
        only needed when ``head_median_weight > 0``, ``gate_logits`` for ``gate_weight``)."""
        c = self.config
        n, _, h, w = x.shape
        target = fill_heads(x, heads) if c.head_target == "fill" else x
        mse = torch.mean((x_hat - target) ** 2)
        person_roi = roi_loss(x_hat, target, persons, c.person_k)
        head_roi = roi_loss(x_hat, target, heads, c.head_k)
        bpp = bpp_from_likelihoods(likelihoods, n * h * w)
        head_bits, _ = head_rate(likelihoods["y"], heads, self.factor, c.head_rate_margin)
        head_median = bpp.new_zeros(())
        if c.head_median_weight > 0:
            if y is None or medians is None:
                raise ValueError("head_median_weight > 0 needs the latent y and the medians")
            head_median = head_median_distance(y, medians, heads, self.factor, c.head_rate_margin)
        gate = bpp.new_zeros(())
        if c.gate_weight > 0:
            if gate_logits is None:
                raise ValueError("gate_weight > 0 needs a gated codec (codec.gate_channels > 0)")
            cells = head_cells(heads, (int(gate_logits.shape[-2]), int(gate_logits.shape[-1])), self.factor)
            gate = gate_loss(gate_logits, cells.to(gate_logits.device), c.gate_pos_weight)
        loss = (
            c.mse_weight * mse
            + c.person_weight * person_roi
            + c.head_weight * head_roi
            + c.rate_weight * bpp
            + c.head_rate_weight * head_bits
            + c.head_median_weight * head_median
            + c.gate_weight * gate
        )
        return ObjectiveTerms(loss=loss, mse=mse, person_roi=person_roi, head_roi=head_roi, bpp=bpp,
                              head_bits=head_bits, head_median=head_median, gate=gate)
