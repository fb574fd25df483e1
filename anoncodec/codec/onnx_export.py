"""Export the analysis/synthesis transforms to ONNX and check them against PyTorch.

Imports torch, onnx (optional extra ``export``) and anoncodec.codec. Files written by
:func:`export_codec`::

    encoder.onnx   x [1,3,H,W] float32 in [0,1], H and W multiples of the downsampling
                   factor (dynamic) -> y [1,M,H/f,W/f] float32
    decoder.onnx   y_hat [1,M,h,w] float32 -> x_hat [1,3,h*f,w*f] float32 in [0,1]
    tables.npz     the entropy coder's tables + model id (factorized prior only)

Each ONNX file carries the model id and downsampling factor in its metadata.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from anoncodec.codec.models import RoiCodec
from anoncodec.errors import ExportError, require

__all__ = ["ExportedCodec", "export_module", "export_codec", "OPSET"]

logger = logging.getLogger(__name__)
OPSET = 17


@dataclass(frozen=True)
class ExportedCodec:
    """Paths of an exported codec and the max abs error of each part against PyTorch."""

    encoder: Path
    decoder: Path
    tables: Path
    encoder_max_abs_err: float
    decoder_max_abs_err: float


def export_module(module: nn.Module, example: torch.Tensor, path: Path, input_name: str,
                  output_name: str, metadata: dict[str, str]) -> None:
    """Trace ``module`` to ONNX with dynamic batch/height/width and attach ``metadata``."""
    onnx = require("onnx", "export")
    module = module.eval().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated but still shipped; it exports these plain
            # conv/GDN graphs with dynamic H/W without needing onnxscript.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module, (example,), str(tmp), input_names=[input_name], output_names=[output_name],
                dynamic_axes={input_name: {0: "batch", 2: "height", 3: "width"},
                              output_name: {0: "batch", 2: "out_height", 3: "out_width"}},
                opset_version=OPSET, dynamo=False,
            )
        model = onnx.load(str(tmp))
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        tmp.replace(path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"ONNX export of {type(module).__name__} to {path} failed: {exc}") from exc


def _max_abs_err(path: Path, module: nn.Module, x: torch.Tensor) -> float:
    ort = require("onnxruntime", "edge")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ref = module(x).numpy()
    return float(np.abs(onnx_out - ref).max())


def export_codec(model: RoiCodec, out_dir: str | Path, check_image: torch.Tensor | None = None,
                 tolerance: float = 1e-3) -> ExportedCodec:
    """Export encoder, decoder and entropy tables of ``model`` into ``out_dir``.

    Args:
        model: a factorized-prior codec with up-to-date tables (``model.update()``).
        out_dir: folder to write ``encoder.onnx``, ``decoder.onnx``, ``tables.npz``.
        check_image: float ``[1,3,H,W]`` in [0,1] used to compare ONNX Runtime with
            PyTorch (default: a fixed random 128x192 image).
        tolerance: largest accepted max abs difference (``y`` and ``x_hat``).

    Raises:
        ExportError: the export fails or ONNX Runtime differs from PyTorch by more than
            ``tolerance``.
    """
    out = Path(out_dir)
    model = model.eval().cpu()
    tables = model.entropy_tables()  # raises ExportError for the hyperprior
    meta = {"anoncodec_model_id": tables.model_id.hex(), "downsampling": str(model.downsampling),
            "architecture": model.architecture}
    if check_image is None:
        check_image = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0))
    x = model.pad(check_image.float().cpu())
    with torch.no_grad():
        y_hat = torch.from_numpy(tables.encode(model.encoder_module()(x)[0].numpy())[1])[None]
    paths = out / "encoder.onnx", out / "decoder.onnx", out / "tables.npz"
    export_module(model.encoder_module(), x, paths[0], "x", "y", meta)
    export_module(model.decoder_module(), y_hat, paths[1], "y_hat", "x_hat", meta)
    tables.save(paths[2])
    enc_err = _max_abs_err(paths[0], model.encoder_module(), x)
    dec_err = _max_abs_err(paths[1], model.decoder_module(), y_hat)
    logger.info("exported to %s: encoder max abs err %.2e, decoder %.2e", out, enc_err, dec_err)
    if max(enc_err, dec_err) > tolerance:
        raise ExportError(f"ONNX Runtime differs from PyTorch: encoder {enc_err:.3g}, decoder {dec_err:.3g} "
                          f"> tolerance {tolerance}")
    return ExportedCodec(*paths, encoder_max_abs_err=enc_err, decoder_max_abs_err=dec_err)
