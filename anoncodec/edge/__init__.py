"""Camera runtime: ONNX Runtime encoder, entropy coder and packet writer.

Numpy, onnxruntime and anoncodec's errors, packet and entropy_coder only; never torch,
codec or serving (a unit test checks that importing it does not load torch).
"""

from anoncodec.edge.encoder import EdgeEncoder, frame_to_input

__all__ = ["EdgeEncoder", "frame_to_input"]
