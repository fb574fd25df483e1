"""The user's own unlabeled footage, auto-annotated once by offline detectors and cached.

May import numpy, opencv, PIL, tqdm, :mod:`anoncodec.errors`, :mod:`anoncodec.config`,
:mod:`anoncodec.roi.boxes` and :mod:`anoncodec.detectors` (lazily, only on a cache miss).

``load_footage`` accepts a video file (anything OpenCV's ``VideoCapture`` reads), a folder of
images (``.jpg/.jpeg/.png/.bmp``, sorted by name) or a single image. It takes every
``frame_stride``-th frame (up to ``max_frames``), runs a face detector (CenterFace) and a
person detector (YOLOv8) once per frame and stores the result in a cache folder::

    <cache root>/<source name>-<key>/
        annotations.json          # version, source info, per frame: file, faces, persons, heads
        frame_000000.png ...      # video frames only; image sources are referenced in place

``key`` hashes the resolved source path, its size and mtime (every image's for a folder),
``frame_stride``, ``max_frames``, the detectors and thresholds and :data:`ANNOTATOR_VERSION`,
so changing any of them re-annotates. The folder is written under a temporary name and
renamed when complete, so an interrupted run never leaves a half cache.

Head boxes: every face gives a head (:func:`~anoncodec.detectors.face.face_to_head_box`);
every upright person whose top region holds no such head gets one derived from its box
(:func:`person_to_head_box`), so persons seen from behind or with undetected tiny faces are
anonymized too.
"""

from __future__ import annotations

import hashlib
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
from anoncodec.data.sample import AnnotatedImage
from anoncodec.errors import DatasetError
from anoncodec.roi.boxes import as_boxes, clip_boxes

__all__ = [
    "ANNOTATOR_VERSION",
    "Detector",
    "default_cache_dir",
    "person_to_head_box",
    "heads_from_detections",
    "load_footage",
]

logger = logging.getLogger(__name__)

# Bump when the head heuristics, the stored fields or the frame format change.
ANNOTATOR_VERSION = "footage-annotations-v1"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Videos are grouped into blocks of this many seconds of source time (the split unit).
GROUP_SECONDS = 2.0
DEFAULT_FPS = 25.0

# Head derived from a person box (standing adults are ~7.5 heads tall; 0.15 leaves a margin
# for hair and box slack): head height = 0.15 x person height, head width = 0.8 x head
# height (at most the person width), centered horizontally, touching the person box top.
PERSON_HEAD_HEIGHT = 0.15
HEAD_WIDTH_PER_HEIGHT = 0.8
# A face-derived head "belongs" to a person when its center lies in the person's top 30 %.
PERSON_TOP_REGION = 0.3

_ANNOTATIONS = "annotations.json"


class Detector(Protocol):
    """Anything with ``detect(frame_rgb, threshold) -> float32 [K, 5]`` (xyxy + score)."""

    def detect(self, frame_rgb: np.ndarray, threshold: float, /) -> np.ndarray: ...


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/anoncodec/footage``, else ``~/.cache/anoncodec/footage``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anoncodec" / "footage"


def person_to_head_box(
    persons_xyxy: np.ndarray,
    head_height: float = PERSON_HEAD_HEIGHT,
    width_per_height: float = HEAD_WIDTH_PER_HEIGHT,
) -> np.ndarray:
    """Guess head boxes from the top of person boxes.

    For a person box of width ``pw`` and height ``ph``: head height ``hh = 0.15 * ph``,
    head width ``min(pw, 0.8 * hh)``, centered on the person, top edge on the person's top.

    Args:
        persons_xyxy: float ``[K, 4]`` or ``[K, 5]`` (a score column is ignored).
        head_height: head height as a fraction of the person height.
        width_per_height: head width / head height.

    Returns:
        float32 ``[K, 4]`` head boxes.
    """
    p = np.asarray(persons_xyxy, np.float32)
    p = as_boxes(p[:, :4] if p.ndim == 2 and p.shape[1] >= 4 else p)
    pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    hh = head_height * ph
    hw = np.minimum(pw, width_per_height * hh)
    cx = (p[:, 0] + p[:, 2]) / 2
    return np.stack([cx - hw / 2, p[:, 1], cx + hw / 2, p[:, 1] + hh], axis=1).astype(
        np.float32
    )


def heads_from_detections(
    faces: np.ndarray,
    persons: np.ndarray,
    image_hw: tuple[int, int],
    extra_heads: np.ndarray | None = None,
) -> np.ndarray:
    """Head boxes of one frame from face and person detections.

    Every face becomes a head box; every upright person (box at least as tall as wide)
    whose top region (top 30 % of its box) contains the center of none of those head boxes
    gets a head from :func:`person_to_head_box`. Lying persons (wider than tall) get none:
    their head may be at either end.

    Args:
        faces: float ``[K, 4|5]`` face boxes.
        persons: float ``[M, 4|5]`` person boxes.
        image_hw: ``(height, width)`` to clip to.
        extra_heads: float ``[L, 4]`` head boxes from elsewhere (a pose model's
            keypoints, :func:`anoncodec.data.heads.pose_head_boxes`); each one whose
            center lies in no face's head is added before the person-top rule.

    Returns:
        float32 ``[J, 4]`` head boxes, clipped, boxes under 1 pixel dropped.
    """
    from anoncodec.detectors.face import face_to_head_box

    face_heads = face_to_head_box(_as_dets(faces)[:, :4])
    if extra_heads is not None and len(extra_heads):
        extra = as_boxes(np.asarray(extra_heads, np.float32)[:, :4])
        c = (extra[:, :2] + extra[:, 2:]) / 2
        covered = (
            (c[:, None, 0] >= face_heads[None, :, 0])
            & (c[:, None, 0] <= face_heads[None, :, 2])
            & (c[:, None, 1] >= face_heads[None, :, 1])
            & (c[:, None, 1] <= face_heads[None, :, 3])
        ).any(axis=1)
        face_heads = np.concatenate([face_heads, extra[~covered]], axis=0)
    p = _as_dets(persons)[:, :4]
    centers = (face_heads[:, :2] + face_heads[:, 2:]) / 2
    top_y2 = p[:, 1] + PERSON_TOP_REGION * (p[:, 3] - p[:, 1])
    inside = (
        (centers[None, :, 0] >= p[:, None, 0])
        & (centers[None, :, 0] <= p[:, None, 2])
        & (centers[None, :, 1] >= p[:, None, 1])
        & (centers[None, :, 1] <= top_y2[:, None])
    )  # [M, K]
    upright = (p[:, 3] - p[:, 1]) >= (p[:, 2] - p[:, 0])
    without_face = upright & ~inside.any(axis=1)
    heads = np.concatenate([face_heads, person_to_head_box(p[without_face])], axis=0)
    return clip_boxes(heads, image_hw[0], image_hw[1])


def _as_dets(dets: Any) -> np.ndarray:
    """Detector output -> float32 ``[K, 5]`` (a missing score column becomes 1)."""
    arr = np.asarray(dets, np.float32)
    if arr.size == 0:
        return np.zeros((0, 5), np.float32)
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise DatasetError(
            f"detector returned shape {arr.shape}; expected [K, 5] (xyxy, score)"
        )
    if arr.shape[1] == 4:
        arr = np.concatenate([arr, np.ones((arr.shape[0], 1), np.float32)], axis=1)
    return arr


@dataclass(frozen=True)
class _Frame:
    index: int  # frame index in the video, or position in the folder
    name: str  # file name (images) or "<video name>:<index>"
    rgb: np.ndarray  # uint8 [H, W, 3]
    bgr: np.ndarray | None  # video frames only (written to the cache as PNG)
    path: str  # source image file; "" for video frames


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
        return "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"
    raise DatasetError(
        f"footage source {str(path)!r} does not exist; expected a video file, an image "
        "folder or an image"
    )


def _folder_images(path: Path) -> list[Path]:
    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DatasetError(
            f"footage folder {str(path)!r} holds no {'/'.join(IMAGE_SUFFIXES)} files"
        )
    return files


def _stat_key(p: Path) -> list[Any]:
    st = p.stat()
    return [p.name, st.st_size, st.st_mtime_ns]


def _cache_key(
    src: DataSourceConfig, path: Path, kind: str, detectors: dict[str, Any]
) -> str:
    if kind == "folder":
        fingerprint: Any = [_stat_key(p) for p in _folder_images(path)]
    else:
        fingerprint = _stat_key(path)
    payload = {
        "path": str(path),
        "kind": kind,
        "files": fingerprint,
        "frame_stride": src.frame_stride,
        "max_frames": src.max_frames,
        "annotator": ANNOTATOR_VERSION,
        **detectors,
    }
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _video_frames(
    path: Path, stride: int, max_frames: int
) -> tuple[Iterator[_Frame], int, float]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DatasetError(
            f"cannot open video {str(path)!r} with OpenCV; expected a video file "
            f"(or images with suffix {'/'.join(IMAGE_SUFFIXES)})"
        )
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or DEFAULT_FPS
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    expected = -(-count // stride) if count > 0 else 0
    if max_frames:
        expected = min(expected, max_frames) if expected else max_frames

    def frames() -> Iterator[_Frame]:
        index, taken = 0, 0
        try:
            while not (max_frames and taken >= max_frames):
                if index % stride:
                    if not cap.grab():
                        break
                else:
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    taken += 1
                    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
                    yield _Frame(index, f"{path.name}:{index:06d}", rgb, bgr, "")
                index += 1
        finally:
            cap.release()

    return frames(), expected, fps


def _image_frames(
    files: list[Path], stride: int, max_frames: int
) -> tuple[list[Path], int]:
    chosen = files[::stride]
    if max_frames:
        chosen = chosen[:max_frames]
    return chosen, len(chosen)


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
        ``order`` = frame index, ``group`` = block of :data:`GROUP_SECONDS` seconds,
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
    key = _cache_key(src, path, kind, detectors)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / f"{path.stem}-{key}"
    cached = _read_cache(final)
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
        (tmp / _ANNOTATIONS).write_text(json.dumps(meta))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _ANNOTATIONS).is_file():
                raise
            logger.info(
                "footage cache %s was written concurrently; using that one", final
            )
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    items = _read_cache(final)
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

    fps = 0.0
    if kind == "video":
        frames, total, fps = _video_frames(path, src.frame_stride, src.max_frames)
    else:
        files = _folder_images(path) if kind == "folder" else [path]
        chosen, total = _image_frames(files, src.frame_stride, src.max_frames)
        frames = (
            _Frame(i * src.frame_stride, p.name, load_rgb(p), None, str(p))
            for i, p in enumerate(chosen)
        )

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
        faces = _as_dets(face_detector.detect(frame.rgb, face_threshold))
        persons = _as_dets(person_detector.detect(frame.rgb, person_conf))
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
        if frame.bgr is not None:
            file_name = f"frame_{frame.index:06d}.png"
            if not cv2.imwrite(str(out_dir / file_name), frame.bgr):
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


def _read_cache(folder: Path) -> list[AnnotatedImage] | None:
    """Items from a complete cache folder, or ``None`` (absent or unusable: re-annotate)."""
    ann = folder / _ANNOTATIONS
    if not ann.is_file():
        return None
    try:
        meta = json.loads(ann.read_text())
        if meta.get("version") != ANNOTATOR_VERSION:
            raise ValueError(
                f"version {meta.get('version')!r} != {ANNOTATOR_VERSION!r}"
            )
        source = Path(meta["source"])
        is_video = meta["kind"] == "video"
        block = max(float(meta.get("fps") or DEFAULT_FPS), 1e-3) * GROUP_SECONDS
        items = []
        for rec in meta["frames"]:
            image = folder / rec["file"] if is_video else Path(rec["path"])
            if not image.is_file():
                raise FileNotFoundError(str(image))
            persons = np.asarray(rec["persons"], np.float32).reshape(-1, 5)[:, :4]
            if is_video:
                group = f"{source.name}:t{int(rec['index'] // block):05d}"
                order, sequence = int(rec["index"]), source.name
            else:
                group, order, sequence = rec["id"], 0, ""
            items.append(
                AnnotatedImage(
                    id=rec["id"],
                    path=str(image),
                    persons_xyxy=clip_boxes(persons, rec["height"], rec["width"]),
                    heads_xyxy=np.asarray(rec["heads"], np.float32).reshape(-1, 4),
                    group=group,
                    order=order,
                    sequence=sequence,
                )
            )
        return items
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("footage cache %s unusable (%s); annotating again", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return None
