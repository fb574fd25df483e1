"""MTCNN face detector (facenet-pytorch; the paper's anonymization metric).

Imports torch and facenet-pytorch (weights ship inside its wheel, nothing is downloaded).
"""

from __future__ import annotations

import logging

import numpy as np

from anoncodec.errors import require

__all__ = ["MtcnnFaceDetector"]

logger = logging.getLogger(__name__)


class MtcnnFaceDetector:
    """Wraps ``facenet_pytorch.MTCNN``; returns float32 ``[K, 5]`` (x1, y1, x2, y2, prob).

    Args:
        min_face_size: smallest face MTCNN searches for, pixels (facenet default 20).
        device: torch device.
    """

    def __init__(self, min_face_size: int = 20, device: str = "cpu") -> None:
        facenet = require("facenet_pytorch", "eval")
        self.mtcnn = facenet.MTCNN(keep_all=True, min_face_size=min_face_size, device=device)

    def detect(self, frame_rgb: np.ndarray, threshold: float = 0.9) -> np.ndarray:
        """Faces in a uint8 ``[H,W,3]`` RGB frame with probability >= ``threshold``."""
        from PIL import Image

        boxes, probs = self.mtcnn.detect(Image.fromarray(frame_rgb))
        if boxes is None:
            return np.zeros((0, 5), np.float32)
        dets = np.concatenate([boxes, probs[:, None]], axis=1).astype(np.float32)
        return dets[dets[:, 4] >= threshold]
