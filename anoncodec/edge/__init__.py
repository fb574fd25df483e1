"""Camera runtime: frame sources, ONNX Runtime encoder, entropy coder and packet writer.

Numpy, onnxruntime, opencv and anoncodec's errors, frames, packet and entropy_coder only; never
torch, codec or serving (a unit test checks that importing it does not load torch). The
gRPC client lives in :mod:`anoncodec.edge.client` (it also needs ``tritonclient``); the
frame sources are :mod:`anoncodec.frames`, re-exported by :mod:`anoncodec.edge.sources`.
"""

from anoncodec.edge.encoder import EdgeEncoder, frame_to_input
from anoncodec.edge.guard import FaceGuard, GuardConfig
from anoncodec.edge.sources import Frame, FrameSource, open_source

__all__ = ["EdgeEncoder", "frame_to_input", "FaceGuard", "GuardConfig", "Frame", "FrameSource", "open_source"]
