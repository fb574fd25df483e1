"""Evaluation: detector adapters, baselines, latency and metrics on reconstructions.

May import anoncodec.codec, anoncodec.data, anoncodec.detectors and anoncodec.edge;
never training. Submodules needing torch (``mtcnn``) are imported lazily.
"""

from anoncodec.evaluation.baselines import blur_regions, jpeg_decode, jpeg_encode
from anoncodec.evaluation.latency import LatencyStats, environment, time_call, write_record

__all__ = ["blur_regions", "jpeg_encode", "jpeg_decode", "LatencyStats", "time_call", "environment", "write_record"]
