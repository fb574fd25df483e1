"""The learned codecs: Ballé's factorized prior (the paper's model) and a scale hyperprior.

Imports torch, compressai, and anoncodec's config/errors/packet/entropy_coder; never
roi, data, training or serving.

Both share one interface:

* ``forward(x)`` for training: ``{"x_hat", "likelihoods"}`` with additive-noise
  quantization (never a real bitstream; its bpp is an estimate).
* ``compress(x) -> Packet`` / ``decompress(packet) -> x_hat``: real entropy coding with
  :mod:`anoncodec.entropy_coder`, the coder the camera runs without PyTorch.
* ``encoder_module()`` / ``decoder_module()``: the analysis and synthesis transforms as
  standalone modules for ONNX export.

Images of any size are padded (edge replication, bottom/right) to a multiple of the
downsampling factor and cropped back after decoding.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import CompressionModel
from torch import Tensor, nn

from anoncodec.codec.gate import GatedEncoder, HeadGate
from anoncodec.codec.layers import analysis_transform, hyper_analysis, hyper_synthesis, synthesis_transform
from anoncodec.codec.registry import register_model
from anoncodec.config import CodecConfig
from anoncodec.entropy_coder import CategoricalCoder, FactorizedTables
from anoncodec.errors import ExportError, PacketError, PacketReason
from anoncodec.packet import Packet, Stream, check_model_id, padding

__all__ = ["RoiCodec", "FactorizedPrior", "ScaleHyperprior"]


def _pad(x: Tensor, factor: int) -> Tensor:
    pad_h, pad_w = padding(x.shape[-2], x.shape[-1], factor)
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def _factorized_tables(bottleneck: EntropyBottleneck, model_id: bytes) -> FactorizedTables:
    if bottleneck._offset.numel() == 0:
        raise ExportError("entropy tables are missing: call model.update() after training")
    coder = CategoricalCoder.from_cdfs(
        bottleneck._quantized_cdf.cpu().numpy(),
        bottleneck._cdf_length.cpu().numpy(),
        bottleneck._offset.cpu().numpy(),
    )
    medians = bottleneck.quantiles[:, 0, 1].detach().cpu().numpy().astype(np.float32)
    return FactorizedTables(medians=medians, coder=coder, model_id=model_id)


class RoiCodec(CompressionModel):
    """Base of anoncodec's architectures (see the module docstring for the interface)."""

    architecture = ""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.downsampling = config.downsampling
        self._tables_cache: dict[str, object] = {}

    # -- bookkeeping --------------------------------------------------------------
    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        """Recompute the integer CDF tables (call once after training, before coding)."""
        self._tables_cache.clear()
        return super().update(scale_table=scale_table, force=force, update_quantiles=update_quantiles)

    def load_state_dict(self, state_dict, strict: bool = True):
        self._tables_cache.clear()
        return super().load_state_dict(state_dict, strict=strict)

    def model_id(self) -> bytes:
        """16-byte hash of the config and every weight and entropy table of the model."""
        h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for key, tensor in sorted(self.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.digest()[:16]

    def pad(self, x: Tensor) -> Tensor:
        """Pad ``[B,3,H,W]`` to a multiple of the downsampling factor (edge replication)."""
        return _pad(x, self.downsampling)

    def _check_image(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected x of shape [B, 3, H, W], got {tuple(x.shape)}")

    def _check_packet(self, packet: Packet, n_streams: int) -> None:
        """Refuse packets of other weights, another architecture or stream count."""
        check_model_id(packet, self._cached("model_id", self.model_id))
        if packet.is_delta:
            raise PacketError("a delta frame decodes only against its sequence's state (anoncodec.replenish."
                              "ReplenishDecoder, or the server's analyze_stream); keyframes decode here",
                              reason=PacketReason.FRAME_TYPE)
        if packet.architecture != self.architecture or len(packet.streams) != n_streams:
            raise PacketError(
                f"packet holds a {packet.architecture} latent with {len(packet.streams)} streams; "
                f"this is a {self.architecture} model with {n_streams}",
                reason=PacketReason.ARCHITECTURE if packet.architecture != self.architecture
                else PacketReason.STREAMS,
            )

    def _cached(self, key: str, build):
        if key not in self._tables_cache:
            self._tables_cache[key] = build()
        return self._tables_cache[key]

    # -- export --------------------------------------------------------------------
    def encoder_module(self) -> nn.Module:
        """``x [B,3,H,W] (padded) -> y [B,M,H/f,W/f]``, float; rounding happens in the coder."""
        return self.g_a

    def decoder_module(self) -> nn.Module:
        """``y_hat [B,M,h,w] -> x_hat [B,3,h*f,w*f]`` in [0, 1] (crop to the original size)."""
        return self.g_s


@register_model("factorized")
class FactorizedPrior(RoiCodec):
    """Fully factorized prior (Ballé et al., "Variational image compression with a scale
    hyperprior", ICLR 2018), as used by Liebender et al. (2024) for the ROI loss.

    ::

        x -> pad -> g_a -> y -> Q -> y_hat -> g_s -> crop -> x_hat
                               |        ^
                               v        |
                         EntropyBottleneck (per-channel CDF tables)

    Args:
        config: ``N`` hidden channels, ``M`` latent channels, ``extra_blocks`` extra
            stride-2 stages (downsampling ``2**(4+extra_blocks)``).
    """

    architecture = "factorized"

    def __init__(self, config: CodecConfig) -> None:
        super().__init__(config)
        self.g_a = analysis_transform(config.N, config.M, config.extra_blocks)
        self.g_s = synthesis_transform(config.N, config.M, config.extra_blocks)
        self.entropy_bottleneck = EntropyBottleneck(config.M)
        self.head_gate = (HeadGate(config.M, config.gate_channels, config.gate_threshold, config.gate_margin)
                          if config.gate_channels else None)
        # Training only (set by the training loop): decode rounded latents instead of
        # noisy ones. Additive noise lets the decoder use sub-step detail that rounding
        # erases: measured 2-6 dB between the training PSNR and the real packets' PSNR.
        self.mixed_quantization = False

    def _medians(self) -> Tensor:
        return self.entropy_bottleneck.quantiles[:, 0, 1].detach()

    def encoder_module(self) -> nn.Module:
        """``x -> y``; with a gate, ``y`` has the medians in the cells the gate erases."""
        if self.head_gate is None:
            return self.g_a
        return GatedEncoder(self.g_a, self.head_gate, self._medians())

    def forward(self, x: Tensor, gate_target: Tensor | None = None, erase: Tensor | None = None) -> dict:
        """Training pass. ``x``: float ``[B,3,H,W]`` in [0,1]; returns ``x_hat`` (same
        shape), ``likelihoods["y"]``, the latent ``y`` before quantization and the entropy
        model's per-channel ``medians`` ``[M]`` (detached: what coding rounds around).

        With a gate, also ``gate_logits`` ``[B,h,w]`` and ``gate_mask`` (the cells erased);
        ``gate_target`` (bool ``[B,h,w]``, the cells under known heads) is erased as well
        while training, so the decoder learns to fill erased heads even before the gate
        finds them all. ``erase`` (bool ``[B,h,w]``) is erased whatever the gate says: the
        training loop's stand-in for the camera-side guard."""
        self._check_image(x)
        y = self.g_a(self.pad(x))
        medians = self._medians()
        if erase is not None:
            y = HeadGate.erase(y, erase, medians)
        gate = {}
        if self.head_gate is not None:
            logits = self.head_gate.logits(y)
            mask = self.head_gate.mask(logits.detach(), gate_target if self.training else None)
            y = self.head_gate.erase(y, mask, medians)
            gate = {"gate_logits": logits, "gate_mask": mask}
        y_hat, y_likelihoods = self.entropy_bottleneck(y)
        if self.training and self.mixed_quantization:
            # the decoder sees what coding sends: y rounded around the medians, with a
            # straight-through gradient; the likelihoods keep the additive-noise proxy
            offset = medians.reshape(1, -1, 1, 1)
            y_hat = y + (torch.round(y - offset) + offset - y).detach()
        x_hat = self.g_s(y_hat)[..., : x.shape[-2], : x.shape[-1]]
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods}, "y": y, "medians": medians, **gate}

    def entropy_tables(self) -> FactorizedTables:
        """The camera's tables (medians + per-channel CDFs), tagged with the model id."""
        return self._cached("tables", lambda: _factorized_tables(self.entropy_bottleneck, self.model_id()))

    @torch.no_grad()
    def compress(self, x: Tensor, latent_filter=None) -> Packet:
        """Encode one image ``x`` (float ``[1,3,H,W]`` in [0,1]) into a packet.

        ``latent_filter`` (optional) maps the latent ``y`` (float32 numpy ``[C,h,w]``) to the
        latent that is coded, e.g. the guaranteed mode's suppression of head regions.
        """
        self._check_image(x)
        if x.shape[0] != 1:
            raise ValueError(f"compress takes one image, got a batch of {x.shape[0]}")
        tables = self.entropy_tables()
        y = self.encoder_module()(self.pad(x))[0].cpu().numpy()
        if latent_filter is not None:
            y = latent_filter(y)
        payload, _ = tables.encode(y)
        return Packet(tables.model_id, self.architecture, int(x.shape[-2]), int(x.shape[-1]),
                      (Stream(tuple(int(d) for d in y.shape), payload),))

    @torch.no_grad()
    def decompress(self, packet: Packet) -> Tensor:
        """Decode a packet into ``x_hat`` (float ``[1,3,H,W]`` in [0,1])."""
        self._check_packet(packet, 1)
        stream = packet.streams[0]
        f = self.downsampling
        expected = (self.config.M, -(-packet.height // f), -(-packet.width // f))
        if stream.shape != expected:
            raise PacketError(f"latent shape {stream.shape} does not fit a {packet.height}x{packet.width} "
                              f"image; expected {expected}", reason=PacketReason.LATENT_SHAPE)
        y_hat = self.entropy_tables().decode(stream.data, stream.shape)
        device = next(self.parameters()).device
        x_hat = self.g_s(torch.from_numpy(y_hat)[None].to(device))
        return x_hat[..., : packet.height, : packet.width]


@register_model("hyperprior")
class ScaleHyperprior(RoiCodec):
    """Scale hyperprior (Ballé et al., ICLR 2018) behind the same interface.

    ::

        x -> g_a -> y -> Q -> y_hat -> g_s -> x_hat
                    |            ^
                   h_a           | GaussianConditional(scales)
                    v            |
                    z -> Q -> z_hat -> h_s -> scales

    Not for cross-runtime use: the table index of every latent element comes from
    ``scales`` computed in floating point, so an ONNX Runtime encoder and a PyTorch
    decoder can pick different tables and desynchronize the range decoder. It encodes
    and decodes with PyTorch on both ends; :meth:`entropy_tables` refuses camera export.
    """

    architecture = "hyperprior"

    def __init__(self, config: CodecConfig) -> None:
        super().__init__(config)
        self.g_a = analysis_transform(config.N, config.M, config.extra_blocks)
        self.g_s = synthesis_transform(config.N, config.M, config.extra_blocks)
        self.h_a = hyper_analysis(config.N, config.M)
        self.h_s = hyper_synthesis(config.N, config.M)
        self.entropy_bottleneck = EntropyBottleneck(config.N)
        self.gaussian_conditional = GaussianConditional(None)

    def forward(self, x: Tensor) -> dict:
        """Training pass; returns ``x_hat`` and ``likelihoods`` of ``y`` and ``z``."""
        self._check_image(x)
        y = self.g_a(self._pad_hyper(x))
        z = self.h_a(torch.abs(y))
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales = self.h_s(z_hat)[..., : y.shape[-2], : y.shape[-1]]
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales)
        x_hat = self.g_s(y_hat)[..., : x.shape[-2], : x.shape[-1]]
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def _pad_hyper(self, x: Tensor) -> Tensor:
        # z is 4x smaller than y: pad so that h_s(z_hat) covers y exactly.
        return _pad(x, self.downsampling * 4)

    def entropy_tables(self) -> FactorizedTables:
        raise ExportError(
            "the hyperprior's table indexes come from floating-point scales, so its packets are "
            "not bit-exact across runtimes (ONNX Runtime on the camera vs PyTorch on the server); "
            "use architecture 'factorized' for camera-side encoding"
        )

    def _z_tables(self) -> FactorizedTables:
        return self._cached("z", lambda: _factorized_tables(self.entropy_bottleneck, self.model_id()))

    def _y_coder(self) -> CategoricalCoder:
        gc = self.gaussian_conditional
        if gc._offset.numel() == 0:
            raise ExportError("entropy tables are missing: call model.update() after training")
        return self._cached("y", lambda: CategoricalCoder.from_cdfs(
            gc._quantized_cdf.cpu().numpy(), gc._cdf_length.cpu().numpy(), gc._offset.cpu().numpy()))

    def _indexes(self, z_hat: np.ndarray, y_shape: tuple[int, ...]) -> np.ndarray:
        device = next(self.parameters()).device
        scales = self.h_s(torch.from_numpy(z_hat)[None].to(device))[..., : y_shape[-2], : y_shape[-1]]
        return self.gaussian_conditional.build_indexes(scales)[0].cpu().numpy()

    @torch.no_grad()
    def compress(self, x: Tensor) -> Packet:
        """Encode one image (float ``[1,3,H,W]`` in [0,1]); streams are ``(y, z)``."""
        self._check_image(x)
        if x.shape[0] != 1:
            raise ValueError(f"compress takes one image, got a batch of {x.shape[0]}")
        y = self.g_a(self._pad_hyper(x))
        z = self.h_a(torch.abs(y))[0].cpu().numpy()
        z_payload, z_hat = self._z_tables().encode(z)
        y_np = y[0].cpu().numpy()
        indexes = self._indexes(z_hat, y_np.shape)
        y_payload = self._y_coder().encode(np.rint(y_np).astype(np.int32), indexes)
        return Packet(self.model_id(), self.architecture, int(x.shape[-2]), int(x.shape[-1]), (
            Stream(tuple(int(d) for d in y_np.shape), y_payload),
            Stream(tuple(int(d) for d in z.shape), z_payload),
        ))

    @torch.no_grad()
    def decompress(self, packet: Packet) -> Tensor:
        """Decode a packet into ``x_hat`` (float ``[1,3,H,W]`` in [0,1])."""
        self._check_packet(packet, 2)
        y_stream, z_stream = packet.streams
        f = self.downsampling * 4
        hz, wz = -(-packet.height // f), -(-packet.width // f)
        if z_stream.shape != (self.config.N, hz, wz) or y_stream.shape != (self.config.M, 4 * hz, 4 * wz):
            raise PacketError(f"latent shapes {y_stream.shape}, {z_stream.shape} do not fit a "
                              f"{packet.height}x{packet.width} image", reason=PacketReason.LATENT_SHAPE)
        z_hat = self._z_tables().decode(z_stream.data, z_stream.shape)
        indexes = self._indexes(z_hat, y_stream.shape)
        y_hat = self._y_coder().decode(y_stream.data, indexes).astype(np.float32)
        device = next(self.parameters()).device
        x_hat = self.g_s(torch.from_numpy(y_hat)[None].to(device))
        return x_hat[..., : packet.height, : packet.width]
