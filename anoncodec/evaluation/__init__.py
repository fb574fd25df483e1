"""Evaluation: detector adapters and metrics on reconstructions.

May import anoncodec.codec, anoncodec.data, anoncodec.detectors and anoncodec.edge;
never training.
"""

from anoncodec.evaluation.mtcnn import MtcnnFaceDetector

__all__ = ["MtcnnFaceDetector"]
