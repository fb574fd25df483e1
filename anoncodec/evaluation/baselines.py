"""Conventional anonymizers a camera would otherwise run: blur/pixelate/fill faces, then JPEG.

Numpy + OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["blur_regions", "jpeg_encode", "jpeg_decode"]


def blur_regions(frame_rgb: np.ndarray, boxes_xyxy: np.ndarray, sigma_factor: float = 0.3) -> np.ndarray:
    """Gaussian-blur each box (sigma = ``sigma_factor`` x the box's larger side), copy returned."""
    out = frame_rgb.copy()
    h, w = out.shape[:2]
    for x1, y1, x2, y2 in np.asarray(boxes_xyxy, np.float32)[:, :4]:
        xa, ya, xb, yb = max(0, int(x1)), max(0, int(y1)), min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        if xb - xa < 2 or yb - ya < 2:
            continue
        sigma = max(1.0, sigma_factor * max(xb - xa, yb - ya))
        out[ya:yb, xa:xb] = cv2.GaussianBlur(out[ya:yb, xa:xb], (0, 0), sigma)
    return out


def jpeg_encode(frame_rgb: np.ndarray, quality: int = 75) -> bytes:
    """JPEG bytes of an RGB frame (OpenCV/libjpeg)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def jpeg_decode(data: bytes) -> np.ndarray:
    """RGB frame from JPEG bytes."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
