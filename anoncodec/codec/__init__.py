"""The learned codec (PyTorch + CompressAI).

May import torch, compressai and anoncodec's errors, config, packet and entropy_coder;
never roi, data, training, evaluation or serving.
"""

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
