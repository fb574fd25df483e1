"""The camera-side encoder: ONNX Runtime analysis transform + entropy coder -> packet.

Numpy, onnxruntime and anoncodec's errors/packet/entropy_coder only: no PyTorch, so it
runs on a camera. Produces the same packets as ``FactorizedPrior.compress``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anoncodec.entropy_coder import FactorizedTables
from anoncodec.errors import ConfigError, ExportError, require
from anoncodec.packet import MAX_SIDE, Packet, Stream, pack, padding

if TYPE_CHECKING:
    from anoncodec.edge.client_config import ClientConfig
    from anoncodec.edge.guard import FaceGuard

__all__ = ["EdgeEncoder", "frame_to_input", "find_encoder_files", "camera_encoder"]

logger = logging.getLogger(__name__)


def frame_to_input(frame_rgb: np.ndarray, factor: int) -> np.ndarray:
    """uint8 ``[H,W,3]`` RGB -> float32 ``[1,3,H',W']`` in [0,1], edge-padded to ``factor``."""
    if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 frame [H, W, 3], got {frame_rgb.dtype} {frame_rgb.shape}")
    h, w = frame_rgb.shape[:2]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ValueError(f"frame {h}x{w} is outside 1..{MAX_SIDE} pixels per side")
    pad_h, pad_w = padding(h, w, factor)
    x = frame_rgb.astype(np.float32).transpose(2, 0, 1) / np.float32(255)
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w)), mode="edge")
    return x[None]


class EdgeEncoder:
    """Encode RGB frames into packet bytes with ONNX Runtime.

    Args:
        encoder_onnx: ``encoder.onnx`` from :func:`anoncodec.codec.onnx_export.export_codec`.
        tables: the matching ``tables.npz``.
        providers: ONNX Runtime execution providers (default: CPU).
        threads: intra-op threads (0: ONNX Runtime's default).
        guard: guaranteed mode (:mod:`anoncodec.edge.guard`): erase the latent of every
            head a camera-side face detector finds before entropy coding.
    """

    def __init__(self, encoder_onnx: str | Path, tables: str | Path,
                 providers: list[str] | None = None, threads: int = 0,
                 guard: FaceGuard | None = None) -> None:
        ort = require("onnxruntime", "edge")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # no spinning idle threads: the guard's face detector runs beside this session
        # (see anoncodec.detectors._onnx.ort_session)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(encoder_onnx), options,
                                            providers=providers or ["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.tables = FactorizedTables.load(tables)
        if meta.get("anoncodec_model_id") != self.tables.model_id.hex():
            raise ExportError(f"{encoder_onnx} (model {meta.get('anoncodec_model_id')}) and {tables} "
                              f"(model {self.tables.model_id.hex()}) come from different exports")
        self.factor = int(meta["downsampling"])
        self.input_name = self.session.get_inputs()[0].name
        self.guard = guard
        self.last_guarded = 0  # heads erased in the last encoded frame (guaranteed mode)

    def analyze(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Run the analysis transform; returns ``y`` float32 ``[C, h, w]``."""
        (y,) = self.session.run(None, {self.input_name: frame_to_input(frame_rgb, self.factor)})
        return y[0]

    def guarded_latent(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The latent to code, ``[C, h, w]``, with the guard's erased cells ``[h, w]``
        (None without a guard) set to the medians."""
        y = self.analyze(frame_rgb)
        if self.guard is None:
            return y, None
        y, mask, self.last_guarded = self.guard.erase_cells(frame_rgb, y, self.factor, self.tables.medians)
        return y, mask

    def encode(self, frame_rgb: np.ndarray) -> Packet:
        """Encode one uint8 ``[H,W,3]`` RGB frame into a :class:`Packet`."""
        y, _ = self.guarded_latent(frame_rgb)
        payload, _ = self.tables.encode(y)
        h, w = frame_rgb.shape[:2]
        return Packet(self.tables.model_id, "factorized", h, w, (Stream(tuple(int(d) for d in y.shape), payload),))

    def encode_bytes(self, frame_rgb: np.ndarray) -> bytes:
        """:meth:`encode` and serialize."""
        return pack(self.encode(frame_rgb))


def find_encoder_files(export_dir: str | Path) -> tuple[Path, Path]:
    """Find the camera encoder and its entropy tables in an export folder or a model repository.

    Args:
        export_dir: a folder with ``encoder.onnx`` + ``tables.npz`` (``export_codec``) or a
            model repository with ``encoder/1/model.onnx`` + ``quantize/1/tables.npz``
            (``anoncodec export``).

    Returns:
        ``(encoder_onnx, tables_npz)``.

    Raises:
        ExportError: neither layout is found.
    """
    folder = Path(export_dir)
    layouts = ((folder / "encoder.onnx", folder / "tables.npz"),
               (folder / "encoder" / "1" / "model.onnx", folder / "quantize" / "1" / "tables.npz"))
    for encoder, tables in layouts:
        if encoder.is_file() and tables.is_file():
            return encoder, tables
    raise ExportError(f"no camera encoder in {str(folder)!r}: expected encoder.onnx + tables.npz or a model "
                      "repository with encoder/1/model.onnx + quantize/1/tables.npz; pass --export-dir with "
                      "the folder `anoncodec export` wrote (the server's model repository)")


def camera_encoder(config: ClientConfig, files: tuple[Path, Path] | None = None) -> EdgeEncoder:
    """The packets-mode encoder ``config`` describes: ``config.export_dir``'s encoder and
    tables (or ``files``, already found), with the guard when ``config.guard_on``."""
    if files is None:
        if config.export_dir is None:
            raise ConfigError("packets mode needs export_dir (--export-dir) with the camera encoder")
        files = find_encoder_files(config.export_dir)
    guard = None
    if config.guard_on:
        from anoncodec.edge.guard import FaceGuard

        guard = FaceGuard(config.guard_settings)
    return EdgeEncoder(*files, threads=config.encoder_threads, guard=guard)
