"""The user's own unlabeled footage, auto-annotated once by offline detectors and cached.

May import numpy, opencv, PIL, tqdm, :mod:`anoncodec.errors`, :mod:`anoncodec.config`,
:mod:`anoncodec.frames`, :mod:`anoncodec.roi.boxes` and :mod:`anoncodec.detectors` (lazily,
only on a cache miss).

``load_footage`` accepts what :func:`anoncodec.frames.open_source` reads from disk: a video
file, a folder of images (:data:`~anoncodec.frames.IMAGE_SUFFIXES`, natural name order) or
a single image. It takes every ``frame_stride``-th frame (up to ``max_frames``), runs a face
detector (CenterFace) and a person detector (YOLOv8) once per frame and stores the result in
a cache folder (:mod:`anoncodec.data.footage_cache`). Changing the source, the frame
selection, the detectors, their thresholds or :data:`ANNOTATOR_VERSION` re-annotates. The
folder is written under a temporary name and renamed when complete, so an interrupted run
never leaves a half cache.

Head boxes come from :func:`~anoncodec.data.heads.heads_from_detections`: every face gives
a head; every upright person whose top region holds no such head gets one derived from its
box (:func:`~anoncodec.data.heads.person_to_head_box`), so persons seen from behind or with
undetected tiny faces are anonymized too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from anoncodec.config import DataSourceConfig
from anoncodec.data._images import load_rgb
from anoncodec.data.footage_cache import (
    ANNOTATIONS,
    ANNOTATOR_VERSION,
    DEFAULT_FPS,
    cache_key,
    default_cache_dir,
    read_cache,
)
from anoncodec.data.heads import (
    as_detections,
    heads_from_detections,
    person_to_head_box,
)
from anoncodec.data.sample import AnnotatedImage
from anoncodec.errors import DatasetError
from anoncodec.frames import ImageFolderSource, VideoFileSource, is_image_file

__all__ = [
    "ANNOTATOR_VERSION",
    "Detector",
    "default_cache_dir",
    "person_to_head_box",
    "heads_from_detections",
    "load_footage",
]

logger = logging.getLogger(__name__)


class Detector(Protocol):
    """Anything with ``detect(frame_rgb, threshold) -> float32 [K, 5]`` (xyxy + score)."""

    def detect(self, frame_rgb: np.ndarray, threshold: float, /) -> np.ndarray: ...


@dataclass(frozen=True)
class _Frame:
    index: int  # frame index in the video, or position in the folder
    name: str  # file name (images) or "<video name>:<index>"
    rgb: np.ndarray  # uint8 [H, W, 3]
    path: str  # source image file; "" for video frames (written to the cache as PNG)


def _detector_id(detector: Any, default: str) -> str:
    if detector is None:
        return default
    custom = getattr(detector, "cache_id", None)
    return (
        str(custom)
        if custom
        else f"{type(detector).__module__}.{type(detector).__qualname__}"
    )


def _classify(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "image" if is_image_file(path) else "video"
    raise DatasetError(
        f"footage source {str(path)!r} does not exist; expected a video file, an image "
        "folder or an image"
    )


def _frames(path: Path, kind: str, stride: int, max_frames: int) -> tuple[Iterator[_Frame], int, float]:
    """The selected frames of a source, how many there will be (0: unknown) and the video fps."""
    if kind == "video":
        video = VideoFileSource(path, max_frames=max_frames or None, stride=stride)

        def decoded() -> Iterator[_Frame]:
            with video:
                for frame in video:
                    yield _Frame(frame.index, f"{path.name}:{frame.index:06d}", frame.frame_rgb, "")

        return decoded(), video.length or 0, video.native_fps or DEFAULT_FPS
    folder = ImageFolderSource(path, max_frames=max_frames or None, stride=stride)
    # The training dataset decodes these files with load_rgb (PIL); annotate the same pixels.
    chosen = ((i * stride, p) for i, p in enumerate(folder.chosen))
    return (_Frame(i, p.name, load_rgb(p), str(p)) for i, p in chosen), folder.length, 0.0


def load_footage(
    src: DataSourceConfig,
    cache_dir: Path | str | None = None,
    face_detector: Any = None,
    person_detector: Any = None,
    face_threshold: float = 0.4,
    person_conf: float = 0.3,
    progress: bool = True,
) -> list[AnnotatedImage]:
    """Load footage, annotating it with the detectors on the first call only.

    Args:
        src: ``kind="footage"``; ``path`` is a video, an image folder or an image;
            ``frame_stride`` and ``max_frames`` (0 = all) select frames.
        cache_dir: cache root (default :func:`default_cache_dir`).
        face_detector: object with ``detect(frame_rgb, threshold) -> [K, 5]``; default
            :class:`~anoncodec.detectors.CenterFaceDetector` (built only on a cache miss).
        person_detector: same for persons; default
            :class:`~anoncodec.detectors.YoloPersonDetector`.
        face_threshold: CenterFace score threshold.
        person_conf: person score threshold.
        progress: show a tqdm progress bar over frames (only on a terminal).

    Returns:
        One :class:`AnnotatedImage` per selected frame, in time/name order. Videos:
        ``order`` = frame index, ``group`` = block of :data:`~anoncodec.data.footage_cache.GROUP_SECONDS` s,
        ``sequence`` = the video file name. Images: ``group`` = file name, ``order`` = 0.

    Raises:
        DatasetError: unreadable source, no frames, bad detector output, cache write failure.
    """
    path = Path(src.path).expanduser().resolve()
    kind = _classify(path)
    detectors = {
        "face_detector": _detector_id(
            face_detector, "anoncodec.detectors.face.CenterFaceDetector"
        ),
        "person_detector": _detector_id(
            person_detector, "anoncodec.detectors.person.YoloPersonDetector"
        ),
        "face_threshold": face_threshold,
        "person_conf": person_conf,
    }
    key = cache_key(src, path, kind, detectors)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / f"{path.stem}-{key}"
    cached = read_cache(final)
    if cached is not None:
        logger.info("footage %s: %d frames from cache %s", path, len(cached), final)
        return cached

    if face_detector is None:
        from anoncodec.detectors import CenterFaceDetector

        face_detector = CenterFaceDetector()
    if person_detector is None:
        from anoncodec.detectors import YoloPersonDetector

        person_detector = YoloPersonDetector()

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        meta = _annotate(
            src,
            path,
            kind,
            tmp,
            face_detector,
            person_detector,
            face_threshold,
            person_conf,
            progress,
        )
        (tmp / ANNOTATIONS).write_text(json.dumps(meta))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / ANNOTATIONS).is_file():
                raise
            logger.info(
                "footage cache %s was written concurrently; using that one", final
            )
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    items = read_cache(final)
    if items is None:  # pragma: no cover - we just wrote it
        raise DatasetError(
            f"footage cache {str(final)!r} unreadable right after writing it"
        )
    logger.info("footage %s: annotated %d frames into %s", path, len(items), final)
    return items


def _annotate(
    src: DataSourceConfig,
    path: Path,
    kind: str,
    out_dir: Path,
    face_detector: Any,
    person_detector: Any,
    face_threshold: float,
    person_conf: float,
    progress: bool,
) -> dict[str, Any]:
    import cv2
    from tqdm.auto import tqdm

    frames, total, fps = _frames(path, kind, src.frame_stride, src.max_frames)

    records: list[dict[str, Any]] = []
    bar = tqdm(
        frames,
        total=total or None,
        desc=f"annotating {path.name}",
        unit="frame",
        disable=None if progress else True,
    )
    for frame in bar:
        height, width = frame.rgb.shape[:2]
        faces = as_detections(face_detector.detect(frame.rgb, face_threshold))
        persons = as_detections(person_detector.detect(frame.rgb, person_conf))
        faces[:, :4] = _clip_keep_all(faces[:, :4], height, width)
        persons[:, :4] = _clip_keep_all(persons[:, :4], height, width)
        heads = heads_from_detections(faces, persons, (height, width))
        record: dict[str, Any] = {
            "id": frame.name,
            "index": frame.index,
            "height": height,
            "width": width,
            "faces": np.round(faces, 2).tolist(),
            "persons": np.round(persons, 2).tolist(),
            "heads": np.round(heads, 2).tolist(),
        }
        if not frame.path:
            file_name = f"frame_{frame.index:06d}.png"
            if not cv2.imwrite(str(out_dir / file_name), np.ascontiguousarray(frame.rgb[:, :, ::-1])):
                raise DatasetError(
                    f"cannot write frame {file_name!r} into {str(out_dir)!r}"
                )
            record["file"] = file_name
        else:
            record["path"] = frame.path
        records.append(record)
    bar.close()
    if not records:
        raise DatasetError(f"footage source {str(path)!r} yielded no frames")
    return {
        "version": ANNOTATOR_VERSION,
        "source": str(path),
        "kind": kind,
        "fps": fps,
        "frame_stride": src.frame_stride,
        "max_frames": src.max_frames,
        "frames": records,
    }


def _clip_keep_all(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    b = boxes.copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    return b
