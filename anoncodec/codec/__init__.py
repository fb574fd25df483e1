"""The learned codec (PyTorch + CompressAI).

May import torch, compressai and anoncodec's errors, config, packet and entropy_coder;
never roi, data, training, evaluation or serving.
"""

import warnings

with warnings.catch_warnings():
    # compressai imports torch_geometric when it is installed (ultralytics' extras pull it in),
    # and that import calls the deprecated torch.jit.script: a warning on every command that
    # the user can do nothing about. Only this one message, only during this import.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    import compressai  # noqa: F401

from anoncodec.codec.checkpoint import load_checkpoint, load_codec, save_checkpoint
from anoncodec.codec.models import FactorizedPrior, RoiCodec, ScaleHyperprior
from anoncodec.codec.registry import get_model, list_models, register_model

__all__ = [
    "RoiCodec",
    "FactorizedPrior",
    "ScaleHyperprior",
    "get_model",
    "list_models",
    "register_model",
    "save_checkpoint",
    "load_checkpoint",
    "load_codec",
]
