"""Pure numpy functions behind each python-backend stage of the Triton model repository.

May import numpy, onnxruntime, opencv (through :mod:`anoncodec.detectors.person`) and
anoncodec's errors, packet, entropy_coder, edge and detectors; never torch. Every
function takes and returns numpy arrays, so it can be unit-tested without a server and
the ``model.py`` adapters in ``model_repository/`` stay a few lines long.

Data flow (``anonymize_frame`` / ``analyze_bitstream``)::

    FRAME uint8 [H,W,3] --preprocess_frame--> x [1,3,H',W'], size [2]
    x --encoder.onnx--> y --quantize_latent--> y_hat, bits
    PACKET bytes [1] --decode_packet--> y_hat [1,C,h,w], size [2]
    y_hat --decoder.onnx--> x_hat --reconstruct--> frame uint8 [H,W,3],
                                                   images [1,3,S,S], letterbox [7]
    images --detector.onnx--> output [1,4+K,A] --detections--> boxes [N,4], scores [N]
    (an ssd detector: images --OpenCV DNN--> output [1,N,7] --ssd_detections--> the same)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anoncodec.contract import MAX_FRAME_HEIGHT, MAX_FRAME_WIDTH
from anoncodec.detectors.person import LetterboxParams, decode_yolo, letterbox
from anoncodec.detectors.ssd import COCO_PERSON, decode_ssd
from anoncodec.edge.encoder import frame_to_input
from anoncodec.entropy_coder import FactorizedTables
from anoncodec.errors import InvalidRequestError, PacketError, PacketReason
from anoncodec.packet import MAX_SIDE, Packet, check_model_id, padding, unpack

__all__ = [
    "InvalidRequestError",
    "FrameLimits",
    "CodecInfo",
    "preprocess_frame",
    "quantize_latent",
    "parse_packet",
    "decode_packet",
    "frame_size",
    "crop_frame",
    "reconstruct",
    "letterbox_to_array",
    "letterbox_from_array",
    "detections",
    "ssd_detections",
]

logger = logging.getLogger(__name__)

LETTERBOX_FIELDS = 7  # scale, pad_x, pad_y, src_h, src_w, dst_h, dst_w


@dataclass(frozen=True)
class FrameLimits:
    """Largest frame the server accepts, in pixels per side.

    Args:
        max_height: largest accepted frame height (1..16384).
        max_width: largest accepted frame width (1..16384).
    """

    max_height: int = MAX_FRAME_HEIGHT
    max_width: int = MAX_FRAME_WIDTH

    def __post_init__(self) -> None:
        for name in ("max_height", "max_width"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 1 <= value <= MAX_SIDE):
                raise InvalidRequestError(f"{name}={value!r}; expected an integer in 1..{MAX_SIDE}")

    def check(self, height: int, width: int, what: str = "frame") -> None:
        """Raise :class:`InvalidRequestError` if a ``height x width`` image is too large or empty."""
        if not (1 <= height <= self.max_height and 1 <= width <= self.max_width):
            raise InvalidRequestError(
                f"{what} is {height}x{width} pixels (HxW); this server accepts 1x1 up to "
                f"{self.max_height}x{self.max_width}: resize it on the camera, or re-export the "
                "model repository with larger --max-height/--max-width",
                reason=PacketReason.FRAME_SIZE,
            )


@dataclass(frozen=True)
class CodecInfo:
    """What the python stages need to know about the exported codec (``codec.json``).

    Args:
        model_id: 16-byte id of the weights (hash), as in every packet.
        downsampling: factor between image and latent sides (16 or 32 ...).
        latent_channels: channels ``M`` of the latent ``y``.
        architecture: codec registry key (only ``"factorized"`` can be served).
    """

    model_id: bytes
    downsampling: int
    latent_channels: int
    architecture: str = "factorized"

    def to_dict(self) -> dict:
        return {"model_id": self.model_id.hex(), "downsampling": self.downsampling,
                "latent_channels": self.latent_channels, "architecture": self.architecture}

    @classmethod
    def from_dict(cls, data: dict) -> CodecInfo:
        return cls(bytes.fromhex(data["model_id"]), int(data["downsampling"]),
                   int(data["latent_channels"]), str(data.get("architecture", "factorized")))


def _require_array(array: np.ndarray, name: str, dtype: type, ndim: int) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != dtype or array.ndim != ndim:
        raise InvalidRequestError(
            f"{name} must be a {ndim}-D {np.dtype(dtype).name} array, got {array.ndim}-D "
            f"{array.dtype.name} with shape {list(array.shape)}"
        )
    return array


def preprocess_frame(frame_rgb: np.ndarray, factor: int,
                     limits: FrameLimits = FrameLimits()) -> tuple[np.ndarray, np.ndarray]:
    """Validate a camera frame and turn it into the encoder's input.

    Args:
        frame_rgb: uint8 ``[H, W, 3]`` RGB frame.
        factor: the codec's downsampling factor; the frame is edge-padded to a multiple.
        limits: largest accepted frame.

    Returns:
        ``(x, size)``: float32 ``[1, 3, H', W']`` in [0, 1] (``H'``, ``W'`` padded up to
        multiples of ``factor``) and int64 ``[2]`` = ``(H, W)``.

    Raises:
        InvalidRequestError: wrong dtype, not ``[H, W, 3]``, empty or larger than ``limits``.
    """
    frame_rgb = _require_array(frame_rgb, "FRAME", np.uint8, 3)
    h, w, channels = frame_rgb.shape
    if channels != 3:
        raise InvalidRequestError(f"FRAME must be RGB [H, W, 3], got shape {list(frame_rgb.shape)}")
    limits.check(h, w)
    x = frame_to_input(frame_rgb, factor)
    return np.ascontiguousarray(x), np.array([h, w], dtype=np.int64)


def quantize_latent(y: np.ndarray, tables: FactorizedTables) -> tuple[np.ndarray, np.ndarray]:
    """Quantize the encoder's latent and measure its real entropy-coded size.

    Runs the very entropy coder the camera runs, so ``bits`` is exactly what a packet's
    payload would weigh (``8 * len(payload)``, header excluded).

    Args:
        y: float32 ``[1, C, h, w]`` latent from ``encoder.onnx``.
        tables: the codec's entropy tables.

    Returns:
        ``(y_hat, bits)``: float32 ``[1, C, h, w]`` and int64 ``[1]``.
    """
    y = _require_array(y, "y", np.float32, 4)
    if y.shape[0] != 1:
        raise InvalidRequestError(f"y must have a batch of 1, got shape {list(y.shape)}")
    if y.shape[1] != tables.medians.size:
        raise InvalidRequestError(f"y has {y.shape[1]} channels; the entropy tables have {tables.medians.size}")
    payload, y_hat = tables.encode(y[0])
    return y_hat[None].astype(np.float32), np.array([8 * len(payload)], dtype=np.int64)


def _packet_bytes(packet: np.ndarray | bytes) -> bytes:
    if isinstance(packet, (bytes, bytearray, memoryview)):
        return bytes(packet)
    array = np.asarray(packet, dtype=object)
    if array.size != 1:
        raise InvalidRequestError(f"PACKET must hold exactly one packet, got shape {list(array.shape)}")
    item = array.reshape(-1)[0]
    if isinstance(item, str):
        raise InvalidRequestError("PACKET must be raw bytes (TYPE_BYTES), got a text string")
    if not isinstance(item, (bytes, bytearray, memoryview, np.bytes_)):
        raise InvalidRequestError(f"PACKET must be bytes, got {type(item).__name__}")
    return bytes(item)


def parse_packet(packet: np.ndarray | bytes, codec: CodecInfo, limits: FrameLimits = FrameLimits()) -> Packet:
    """Parse one packet and check it against the served codec: weights, architecture, frame
    size and latent shape (keyframes, deltas and version-1 packets alike).

    Raises:
        PacketError: malformed packet, wrong architecture or latent shape.
        ModelMismatchError: the packet was encoded by other weights.
        InvalidRequestError: the packet's frame is larger than ``limits``.
    """
    parsed = unpack(_packet_bytes(packet))
    check_model_id(parsed, codec.model_id)
    streams = 2 if parsed.is_delta else 1
    if parsed.architecture != codec.architecture or len(parsed.streams) != streams:
        raise PacketError(f"packet holds a {parsed.architecture!r} latent with {len(parsed.streams)} "
                          f"stream(s); this server decodes {codec.architecture!r} packets with one stream",
                          reason=PacketReason.ARCHITECTURE if parsed.architecture != codec.architecture
                          else PacketReason.STREAMS)
    limits.check(parsed.height, parsed.width, "the packet's frame")
    pad_h, pad_w = padding(parsed.height, parsed.width, codec.downsampling)
    expected = (codec.latent_channels, (parsed.height + pad_h) // codec.downsampling,
                (parsed.width + pad_w) // codec.downsampling)
    if tuple(parsed.streams[0].shape) != expected:
        raise PacketError(f"packet latent shape {parsed.streams[0].shape} does not match a {parsed.height}x"
                          f"{parsed.width} frame; expected {expected}", reason=PacketReason.LATENT_SHAPE)
    return parsed


def decode_packet(packet: np.ndarray | bytes, tables: FactorizedTables, codec: CodecInfo,
                  limits: FrameLimits = FrameLimits()) -> tuple[np.ndarray, np.ndarray]:
    """Parse and entropy-decode one packet of a frame on its own (or a keyframe).

    Args:
        packet: the packet's bytes, or a ``[1]`` object array holding them (Triton BYTES).
        tables: the codec's entropy tables.
        codec: id, downsampling and latent channels of the served codec.
        limits: largest accepted frame (a packet may claim up to 16384x16384).

    Returns:
        ``(y_hat, size)``: float32 ``[1, C, h, w]`` and int64 ``[2]`` = original ``(H, W)``.

    Raises:
        PacketError: malformed packet, a delta frame, wrong architecture or latent shape.
        ModelMismatchError: the packet was encoded by other weights.
        InvalidRequestError: the packet's frame is larger than ``limits``.
    """
    parsed = parse_packet(packet, codec, limits)
    if parsed.is_delta:
        raise PacketError("a delta frame decodes only against its sequence's state: send it to the "
                          "sequence entry point (analyze_stream), or send keyframes here",
                          reason=PacketReason.FRAME_TYPE)
    stream = parsed.streams[0]
    y_hat = tables.decode(stream.data, stream.shape)
    return y_hat[None].astype(np.float32), frame_size(parsed)


def frame_size(packet: Packet) -> np.ndarray:
    """The ``size`` tensor (int64 ``[2]``: original ``(H, W)``) of a parsed packet."""
    return np.array([packet.height, packet.width], dtype=np.int64)


def _size(size: np.ndarray) -> tuple[int, int]:
    size = np.asarray(size).reshape(-1)
    if size.size != 2 or not np.issubdtype(size.dtype, np.integer):
        raise InvalidRequestError(f"size must be 2 integers (H, W), got {size.dtype.name} {list(size.shape)}")
    return int(size[0]), int(size[1])


def crop_frame(x_hat: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Decoder output -> the original frame: crop the padding, scale to uint8.

    Args:
        x_hat: float32 ``[1, 3, H', W']`` in [0, 1] (padded size).
        size: int64 ``[2]`` = original ``(H, W)``, ``H <= H'``, ``W <= W'``.

    Returns:
        uint8 ``[H, W, 3]`` RGB (rounded half to even like torch, clipped).
    """
    x_hat = _require_array(x_hat, "x_hat", np.float32, 4)
    h, w = _size(size)
    if x_hat.shape[0] != 1 or x_hat.shape[1] != 3 or not (1 <= h <= x_hat.shape[2] and 1 <= w <= x_hat.shape[3]):
        raise InvalidRequestError(f"cannot crop x_hat {list(x_hat.shape)} to {h}x{w}")
    x = np.clip(x_hat[0, :, :h, :w], 0, 1) * np.float32(255)
    return np.ascontiguousarray(np.rint(x).astype(np.uint8).transpose(1, 2, 0))


def letterbox_to_array(params: LetterboxParams) -> np.ndarray:
    """:class:`LetterboxParams` -> float64 ``[7]`` (a tensor that can travel between stages)."""
    return np.array([params.scale, params.pad_x, params.pad_y, params.src_h, params.src_w,
                     params.dst_h, params.dst_w], dtype=np.float64)


def letterbox_from_array(array: np.ndarray) -> LetterboxParams:
    """Inverse of :func:`letterbox_to_array`."""
    a = np.asarray(array, dtype=np.float64).reshape(-1)
    if a.size != LETTERBOX_FIELDS or not np.isfinite(a).all() or a[0] <= 0:
        raise InvalidRequestError(f"letterbox must be {LETTERBOX_FIELDS} finite numbers with scale > 0, "
                                  f"got {a.tolist()}")
    return LetterboxParams(float(a[0]), *(int(v) for v in a[1:]))


def reconstruct(x_hat: np.ndarray, size: np.ndarray,
                detector_size: int | tuple[int, int] = 640) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoder output -> anonymized frame, plus the detector's letterboxed input.

    Args:
        x_hat: float32 ``[1, 3, H', W']`` in [0, 1].
        size: int64 ``[2]`` original ``(H, W)``.
        detector_size: the person detector's input size ``S`` or ``(S_h, S_w)``.

    Returns:
        ``(frame, images, letterbox)``: uint8 ``[H, W, 3]``; float32 ``[1, 3, S_h, S_w]``
        in [0, 1]; float64 ``[7]`` (see :func:`letterbox_to_array`).
    """
    frame = crop_frame(x_hat, size)
    images, params = letterbox(frame, detector_size)
    return frame, images, letterbox_to_array(params)


def detections(output: np.ndarray, letterbox_params: np.ndarray, conf: float = 0.25, iou: float = 0.45,
               person_classes: Sequence[int] = (0, 1), max_det: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """YOLOv8 output -> person boxes in frame pixels (score filter, NMS, undo letterbox).

    Args:
        output: float ``[1, 4 + K, A]`` raw detector output.
        letterbox_params: float64 ``[7]`` from :func:`reconstruct`.
        conf: minimum person score.
        iou: NMS IoU threshold.
        person_classes: class indices that count as a person.
        max_det: at most this many boxes.

    Returns:
        ``(boxes_xyxy, scores)``: float32 ``[N, 4]`` (x1, y1, x2, y2 in input pixels) and
        float32 ``[N]``, by decreasing score.
    """
    output = np.asarray(output)
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[1] < 5:
        raise InvalidRequestError(f"detector output must be [1, 4+K, A], got {list(output.shape)}")
    found = decode_yolo(output, letterbox_from_array(letterbox_params), conf, iou, person_classes, max_det)
    return np.ascontiguousarray(found[:, :4]), np.ascontiguousarray(found[:, 4])


def ssd_detections(output: np.ndarray, letterbox_params: np.ndarray, conf: float = 0.25, iou: float = 0.45,
                   person_classes: Sequence[int] = (COCO_PERSON,),
                   max_det: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """SSD ``DetectionOutput`` -> person boxes in frame pixels (class and score filter, NMS, undo letterbox).

    Args:
        output: float ``[1, N, 7]`` detector stage output (OpenCV's ``[1, 1, N, 7]`` without
            its leading 1): ``image_id, class_id, score, x1, y1, x2, y2`` per row, corners
            normalized to the letterboxed input.
        letterbox_params: float64 ``[7]`` from :func:`reconstruct`.
        conf: minimum person score.
        iou: NMS IoU threshold.
        person_classes: class ids that count as a person (TF OD API COCO: 1).
        max_det: at most this many boxes.

    Returns:
        ``(boxes_xyxy, scores)``: float32 ``[N, 4]`` (x1, y1, x2, y2 in input pixels) and
        float32 ``[N]``, by decreasing score.
    """
    output = np.asarray(output)
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[2] != 7:
        raise InvalidRequestError(f"ssd detector output must be [1, N, 7], got {list(output.shape)}")
    found = decode_ssd(output, letterbox_from_array(letterbox_params), conf, iou, person_classes, max_det)
    return np.ascontiguousarray(found[:, :4]), np.ascontiguousarray(found[:, 4])
