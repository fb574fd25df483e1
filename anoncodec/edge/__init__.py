"""Camera runtime: frame sources, ONNX Runtime encoder, entropy coder and packet writer.

Numpy, onnxruntime, opencv and anoncodec's errors, frames, packet and entropy_coder only; never
torch, codec or serving (a unit test checks that importing it does not load torch). The
gRPC camera client (it also needs ``tritonclient``, ``prometheus_client`` and ``tqdm``) is
split by concern; each module imports only those above it::

    encoder        EdgeEncoder, find_encoder_files (packets mode)
    client_config  ClientConfig, MODES, WHEN_FULL, RETRYABLE_STATUS, backoff_schedule
    request        the gRPC request of one frame or packet (anoncodec.contract's tensors)
    transport      TritonInference (async gRPC, channel args, error mapping), InferenceResult
    results        FrameResult, CameraSummary, RunTally
    metrics        CameraMetrics (Prometheus)
    outage         OutageWatch: holding frames for a lost server, the readiness probe
    sinks          annotated video, detections file, progress bar, draw_detections
    client         CameraClient: buffer, in-flight slots, retries, delivery in frame order

``from anoncodec.edge.client import X`` still works for every name the client used to define.
The frame sources are :mod:`anoncodec.frames`, re-exported by :mod:`anoncodec.edge.sources`.
"""

from anoncodec.edge.encoder import EdgeEncoder, frame_to_input
from anoncodec.edge.guard import FaceGuard, GuardConfig
from anoncodec.edge.sources import Frame, FrameSource, open_source

__all__ = ["EdgeEncoder", "frame_to_input", "FaceGuard", "GuardConfig", "Frame", "FrameSource", "open_source"]
