"""Training: the loop, the two optimizers and checkpoints that carry config and model id.

Imports anoncodec.codec, anoncodec.roi and anoncodec.data; nothing imports training.
"""

from anoncodec.training.loop import TrainResult, resolve_device, train
from anoncodec.training.optim import make_optimizers, split_parameters

__all__ = ["train", "TrainResult", "resolve_device", "make_optimizers", "split_parameters"]
