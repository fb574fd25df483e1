"""Where the camera client's delivered frames go: an annotated video of the *anonymized*
frames (:class:`VideoSink`), a JSON-lines detections file (:class:`DetectionsFile`) and a
progress bar, together in :class:`ResultSinks`.

Numpy, OpenCV and tqdm (imported when used) and anoncodec's errors and ``edge.results``.
Raw frames never reach a sink: the video gets the server's anonymized frames, the
detections file boxes and scores only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from anoncodec.edge.results import FrameResult, RunTally
from anoncodec.errors import ConfigError, require

__all__ = ["draw_detections", "VideoSink", "DetectionsFile", "ResultSinks"]


def draw_detections(frame_rgb: np.ndarray, boxes_xyxy: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Draw person boxes and scores on a copy of ``frame_rgb`` (uint8 ``[H,W,3]``); returns BGR uint8."""
    cv2 = require("cv2", "edge")
    image = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    for (x1, y1, x2, y2), score in zip(boxes_xyxy, scores):
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(image, p1, p2, (0, 255, 0), 2)
        cv2.putText(image, f"person {score:.2f}", (p1[0], max(p1[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (0, 255, 0), 1, cv2.LINE_AA)
    return image


class VideoSink:
    """Annotated anonymized frames -> video file; opened at the first frame (its size)."""

    FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "XVID"}

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._writer = None

    def write(self, result: FrameResult) -> None:
        """Append ``result``'s anonymized frame with its detections drawn (resized to the first frame's size)."""
        cv2 = require("cv2", "edge")
        image = draw_detections(result.anonymized, result.boxes_xyxy, result.scores)
        if self._writer is None:
            self.size = (image.shape[1], image.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*self.FOURCC.get(self.path.suffix.lower(), "MJPG"))
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                raise ConfigError(f"OpenCV cannot write the video {str(self.path)!r}; use a .avi or .mp4 name")
        if (image.shape[1], image.shape[0]) != self.size:  # image folders may mix sizes
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None



class DetectionsFile:
    """JSON lines, one per delivered frame (:meth:`FrameResult.to_json`: no pixels)."""

    def __init__(self, path: str | Path) -> None:
        self._file = open(path, "w")

    def write(self, result: FrameResult) -> None:
        self._file.write(json.dumps(result.to_json()) + "\n")

    def close(self) -> None:
        self._file.close()


class ResultSinks:
    """The outputs of one run, each optional, fed in frame order by :meth:`write`.

    Args:
        output_video: annotated anonymized frames go here (None: no video).
        detections: JSON-lines file, one line per frame (None: none).
        fps: frame rate of the video.
        progress: show a tqdm progress bar (on stderr).
        total: frames expected (None: unknown), for the progress bar.
        desc: the progress bar's label.
    """

    def __init__(self, output_video: str | None, detections: str | None, fps: float, progress: bool = False,
                 total: int | None = None, desc: str = "camera") -> None:
        tqdm = require("tqdm", "edge").tqdm
        self.video = VideoSink(output_video, fps) if output_video else None
        self.detections = DetectionsFile(detections) if detections else None
        self.bar = tqdm(total=total, disable=not progress, unit="frame", desc=desc, leave=False)

    def write(self, result: FrameResult, tally: RunTally) -> None:
        """Write one delivered frame (the video only takes ok frames); ``tally`` (already
        counting it) feeds the progress bar."""
        if result.status == "ok" and self.video is not None:
            self.video.write(result)
        if self.detections is not None:
            self.detections.write(result)
        self.bar.update(1)
        self.bar.set_postfix(ok=tally.ok, failed=tally.failed, dropped=tally.dropped, refresh=False)

    def close(self) -> None:
        self.bar.close()
        if self.video is not None:
            self.video.close()
        if self.detections is not None:
            self.detections.close()
