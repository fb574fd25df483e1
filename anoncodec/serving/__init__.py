"""Serving: the pure numpy stages behind the Triton model repository, its configs (written
by ``repository``, read by ``model_config``), the export into it and the local
``tritonserver`` launcher. Only what the server runs: test tooling is in :mod:`anoncodec.qa`.

May import numpy, onnxruntime, opencv and anoncodec's errors, config, packet,
entropy_coder, edge and detectors; torch and :mod:`anoncodec.codec` only lazily inside
:func:`anoncodec.serving.export.export_repository`. Never imports training, data or
evaluation. Importing this package does not load torch (a unit test checks it).
"""

from anoncodec.serving.repository import BACKENDS, ENSEMBLES, RepositoryOptions, render_configs, write_configs
from anoncodec.serving.stages import (
    CodecInfo,
    FrameLimits,
    InvalidRequestError,
    crop_frame,
    decode_packet,
    detections,
    preprocess_frame,
    quantize_latent,
    reconstruct,
)

__all__ = [
    "BACKENDS",
    "ENSEMBLES",
    "RepositoryOptions",
    "render_configs",
    "write_configs",
    "CodecInfo",
    "FrameLimits",
    "InvalidRequestError",
    "preprocess_frame",
    "quantize_latent",
    "decode_packet",
    "crop_frame",
    "reconstruct",
    "detections",
]
