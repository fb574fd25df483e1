"""The one frame reader: video files, image folders, single images, webcams and streams.

Numpy, OpenCV and :mod:`anoncodec.errors` only; never torch. Every layer may import it
(training data, evaluation, the camera client, the demo, benchmarks and tests), so every
part of the project agrees on which files are images and in which order a folder is read.
:mod:`anoncodec.edge.sources` re-exports it. Every source yields :class:`Frame` objects
holding an RGB uint8 ``[H, W, 3]`` array, its index (position in the source) and a
timestamp in seconds.

- a video file (anything OpenCV's ``VideoCapture`` reads): timestamps are media time;
  the length is known (for a progress bar);
- a folder of images (:data:`IMAGE_SUFFIXES`, in :func:`natural_key` order: sorted by
  name with numbers compared as numbers, so ``f2.png`` comes before ``f10.png``; see
  :func:`list_images`) or one image;
- a webcam index (``0`` or ``"0"``) or a stream URL (``rtsp://``, ``http(s)://``): live,
  unknown length, timestamps are seconds since the first frame.

``stride`` keeps every n-th frame (indices 0, n, 2n, ...; skipped video frames are
grabbed, not converted); ``max_frames`` stops after that many kept frames; ``fps``
throttles delivery to at most that rate (replay a file as if it were live). A source that
cannot be opened or decoded raises
:class:`~anoncodec.errors.DatasetError`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anoncodec.errors import DatasetError, require

__all__ = ["Frame", "FrameSource", "VideoFileSource", "ImageFolderSource", "LiveSource", "open_source",
           "IMAGE_SUFFIXES", "is_image_file", "list_images", "natural_key", "read_frames"]

logger = logging.getLogger(__name__)

#: suffixes (lower case) of the files read as images; anything else is tried as a video
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _cv2():
    return require("cv2", "edge")


def is_image_file(path: str | Path) -> bool:
    """True for an existing file whose suffix is one of :data:`IMAGE_SUFFIXES`."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def natural_key(path: str | Path) -> list:
    """Sort key of a file name with digit runs compared as numbers (``f2`` < ``f10``)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", Path(path).name)]


def list_images(folder: str | Path) -> list[Path]:
    """The image files of ``folder`` (not recursive) in :func:`natural_key` order.

    Raises:
        DatasetError: ``folder`` is not a folder, or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder {str(folder)!r} does not exist")
    files = sorted((p for p in folder.iterdir() if is_image_file(p)), key=natural_key)
    if not files:
        raise DatasetError(f"folder {str(folder)!r} holds no image (suffixes {'/'.join(IMAGE_SUFFIXES)})")
    return files


@dataclass(frozen=True)
class Frame:
    """One frame of a source.

    Attributes:
        index: position in the source (0-based; with a stride, 0, stride, 2 * stride, ...).
        timestamp: seconds; media time for video files, seconds since the first frame for
            folders and live sources.
        frame_rgb: uint8 ``[H, W, 3]`` RGB, C-contiguous.
    """

    index: int
    timestamp: float
    frame_rgb: np.ndarray


class FrameSource:
    """Base class: iterate to get :class:`Frame` objects; close (or use ``with``) to release.

    Args:
        max_frames: stop after this many frames (None: until the source ends).
        fps: deliver at most this many frames per second (None: as fast as they are read).
        stride: keep every ``stride``-th frame of the source (1: all).
    """

    #: short description for logs and summaries
    name: str = "source"

    def __init__(self, max_frames: int | None = None, fps: float | None = None, stride: int = 1) -> None:
        if max_frames is not None and max_frames < 1:
            raise DatasetError(f"max_frames must be at least 1, got {max_frames}")
        if fps is not None and not fps > 0:
            raise DatasetError(f"fps must be positive, got {fps}")
        if stride < 1:
            raise DatasetError(f"stride must be at least 1, got {stride}")
        self.max_frames = max_frames
        self.fps = fps
        self.stride = stride

    # subclasses yield (index in the source, timestamp or None, frame_rgb) of every kept frame
    def _read(self) -> Iterator[tuple[int, float | None, np.ndarray]]:
        raise NotImplementedError

    def _capped(self, count: int) -> int:
        """Frames delivered from a source of ``count`` frames (stride, then max_frames)."""
        kept = -(-count // self.stride)
        return kept if self.max_frames is None else min(kept, self.max_frames)

    @property
    def length(self) -> int | None:
        """Number of frames this source will yield, when known (files and folders)."""
        return None

    @property
    def native_fps(self) -> float | None:
        """The source's own frame rate when it reports one (video files, some cameras)."""
        return None

    def __iter__(self) -> Iterator[Frame]:
        start = None
        for delivered, (index, timestamp, frame_rgb) in enumerate(self._read()):
            if self.max_frames is not None and delivered >= self.max_frames:
                break
            now = time.monotonic()
            if start is None:
                start = now
            if self.fps is not None:
                due = start + delivered / self.fps
                if due > now:
                    time.sleep(due - now)
                    now = time.monotonic()
            if timestamp is None:
                timestamp = now - start
            yield Frame(index, float(timestamp), frame_rgb)

    def close(self) -> None:
        """Release the underlying capture (idempotent)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _bgr_to_rgb(frame_bgr: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    if frame_bgr.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2RGB))
    if frame_bgr.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGRA2RGB))
    return np.ascontiguousarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))


class _CaptureSource(FrameSource):
    """Shared code of the sources read with ``cv2.VideoCapture``."""

    def __init__(self, target: str | int, name: str, max_frames: int | None, fps: float | None,
                 stride: int = 1) -> None:
        super().__init__(max_frames, fps, stride)
        cv2 = _cv2()
        self.name = name
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            self._capture.release()
            raise DatasetError(self._open_error())
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise DatasetError(f"{self.name}: opened, but no frame could be decoded; {self._hint()}")
        self._first: np.ndarray | None = first

    def _open_error(self) -> str:
        return f"cannot open {self.name}; {self._hint()}"

    def _hint(self) -> str:
        return "check the path, URL or device"

    @property
    def native_fps(self) -> float | None:
        fps = self._capture.get(_cv2().CAP_PROP_FPS) if self._capture is not None else 0.0
        return float(fps) if fps and 0 < fps < 1000 else None

    def _timestamp(self, index: int) -> float | None:
        return None

    def _read(self) -> Iterator[tuple[int, float | None, np.ndarray]]:
        if self._capture is None:
            raise DatasetError(f"{self.name} was closed")
        frame, index = self._first, 0
        self._first = None
        while frame is not None:
            yield index, self._timestamp(index), _bgr_to_rgb(frame)
            index += 1
            frame = None
            while index % self.stride:  # skipped frames: demux (and decode) only
                if not self._capture.grab():
                    break
                index += 1
            else:
                ok, frame = self._capture.read()
                if not ok:
                    frame = None
        self._end(index)

    def _end(self, frames: int) -> None:
        logger.info("%s ended after %d frames", self.name, frames)

    def close(self) -> None:
        if getattr(self, "_capture", None) is not None:
            self._capture.release()
            self._capture = None


class VideoFileSource(_CaptureSource):
    """A video file read with OpenCV; timestamps are media time.

    Raises:
        DatasetError: the file is missing, or OpenCV cannot open or decode it.
    """

    def __init__(self, path: str | Path, max_frames: int | None = None, fps: float | None = None,
                 stride: int = 1) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"video file {str(self.path)!r} does not exist")
        super().__init__(str(self.path), str(self.path), max_frames, fps, stride)
        count = int(self._capture.get(_cv2().CAP_PROP_FRAME_COUNT) or 0)
        self._count = count if count > 0 else None

    def _hint(self) -> str:
        return "expected a video OpenCV can read (e.g. .avi/.mp4), an image, a folder of images or a camera"

    @property
    def length(self) -> int | None:
        if self._count is None:
            return self.max_frames
        return self._capped(self._count)

    def _timestamp(self, index: int) -> float | None:
        fps = self.native_fps
        return index / fps if fps else None


class LiveSource(_CaptureSource):
    """A webcam (device index) or a network stream (RTSP/HTTP URL) read with OpenCV.

    The stream ends when the device or server stops sending frames.

    Raises:
        DatasetError: the device or URL cannot be opened, or sends no frame.
    """

    def __init__(self, target: int | str, max_frames: int | None = None, fps: float | None = None,
                 stride: int = 1) -> None:
        self.target = target
        name = f"camera {target}" if isinstance(target, int) else _redact(target)
        super().__init__(target, name, max_frames, fps, stride)

    def _hint(self) -> str:
        if isinstance(self.target, int):
            return "is a camera attached (see `ls /dev/video*`) and not used by another program?"
        return "is the stream running and the URL (scheme, host, port, path, credentials) right?"

    def _end(self, frames: int) -> None:
        logger.warning("%s stopped sending frames after %d frames", self.name, frames)


class ImageFolderSource(FrameSource):
    """The images of a folder in natural name order, or a single image file.

    Raises:
        DatasetError: no image in the folder, or an image cannot be decoded (when reached).
    """

    def __init__(self, path: str | Path, max_frames: int | None = None, fps: float | None = None,
                 stride: int = 1) -> None:
        super().__init__(max_frames, fps, stride)
        self.path = Path(path)
        self.name = str(self.path)
        if self.path.is_dir():
            self.files = list_images(self.path)
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise DatasetError(f"image source {str(self.path)!r} does not exist")

    @property
    def length(self) -> int:
        return self._capped(len(self.files))

    @property
    def chosen(self) -> list[Path]:
        """The files this source reads (every ``stride``-th, at most ``max_frames``)."""
        return self.files[::self.stride][:self.max_frames]

    def _read(self) -> Iterator[tuple[int, float | None, np.ndarray]]:
        cv2 = _cv2()
        for position, path in enumerate(self.chosen):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise DatasetError(f"cannot decode image {str(path)!r}; remove it from {self.name} or replace it")
            yield position * self.stride, None, _bgr_to_rgb(image)


def _redact(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://***@host/x`` (never log credentials)."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", url)


def open_source(source: str | Path | int, max_frames: int | None = None, fps: float | None = None,
                stride: int = 1) -> FrameSource:
    """Open a frame source, dispatching on what ``source`` is.

    Args:
        source: a webcam index (int, or a string of digits), a stream URL
            (``rtsp://``, ``http://``, ``https://``, ...), a folder of images, an image file
            or a video file.
        max_frames: stop after this many frames.
        fps: deliver at most this many frames per second.
        stride: keep every ``stride``-th frame (indices 0, stride, 2 * stride, ...).

    Returns:
        A :class:`FrameSource`; iterate it for :class:`Frame` objects and close it after.

    Raises:
        DatasetError: the source does not exist or cannot be opened or decoded.
    """
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        return LiveSource(int(source), max_frames, fps, stride)
    if isinstance(source, str) and _URL.match(source):
        return LiveSource(source, max_frames, fps, stride)
    path = Path(source)
    if path.is_dir() or is_image_file(path):
        return ImageFolderSource(path, max_frames, fps, stride)
    if path.is_file():
        return VideoFileSource(path, max_frames, fps, stride)
    raise DatasetError(f"source {str(source)!r} is neither an existing file or folder, a camera index (0, 1, "
                       "...) nor a URL (rtsp://, http://)")


def read_frames(source: str | Path, max_frames: int | None = None, stride: int = 1) -> list[np.ndarray]:
    """Every kept frame of a file or folder source as uint8 RGB ``[H, W, 3]`` arrays.

    Raises:
        DatasetError: the source cannot be opened, or yields no frame.
    """
    with open_source(source, max_frames=max_frames, stride=stride) as frames:
        images = [frame.frame_rgb for frame in frames]
    if not images:  # pragma: no cover - every source raises on open when it has no frame
        raise DatasetError(f"{str(source)!r} yielded no frame")
    return images
