"""Per-frame measurement of the held-out clip: faces found again, bytes, PSNR-out; run lengths.

May import numpy, tqdm and :mod:`anoncodec.evaluation` (methods, metrics, heads found).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoncodec.evaluation.heldout_video.clip import Clip

__all__ = ["DETECTORS", "FrameRuns", "measure", "summarize"]

# Face detectors of the measurement, in report order: name -> what it is.
DETECTORS = {
    "centerface": "CenterFace, score >= 0.2",
    "mtcnn": "MTCNN, every face its cascade accepts",
}


@dataclass(frozen=True)
class FrameRuns:
    """Frames with a face found, and the longest run of them.

    Attributes:
        frames: frames of the clip.
        with_face: frames whose flag is set.
        longest: longest run of consecutive flagged frames.
        runs: number of separate runs.
    """

    frames: int
    with_face: int
    longest: int
    runs: int

    @classmethod
    def from_flags(cls, flags: Sequence[bool]) -> FrameRuns:
        """From one bool per frame, in clip order."""
        longest = current = runs = 0
        for flag in flags:
            if flag:
                current += 1
                runs += current == 1
                longest = max(longest, current)
            else:
                current = 0
        return cls(len(flags), int(sum(bool(f) for f in flags)), longest, runs)

    @property
    def share(self) -> float:
        """``with_face / frames`` (``nan`` for an empty clip)."""
        return self.with_face / self.frames if self.frames else float("nan")

    def to_dict(self, fps: float) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "share": self.share,
            "longest_s": self.longest / fps,
        }


def _detect(detectors: dict[str, Any], frame_rgb: np.ndarray) -> dict[str, np.ndarray]:
    from anoncodec.evaluation.methods import ANONYMIZER_THRESHOLD

    return {
        "centerface": detectors["centerface"].detect(frame_rgb, ANONYMIZER_THRESHOLD),
        "mtcnn": detectors["mtcnn"].detect(frame_rgb, 0.0),
    }


def measure(
    clip: Clip, methods: dict[str, Any], detectors: dict[str, Any], progress: bool
) -> dict[str, Any]:
    """Per-frame flags, bytes and PSNR-out of the original and every method.

    Returns:
        ``{"original": {det: {"heads": [...], "background": [...]}}, key: {"bytes",
        "psnr_out", det: {"heads": [...], "background": [...]}}}``: per frame, the
        number of pasted (ground-truth) heads and of background heads found
        (original) or found again (a method).
    """
    from tqdm.auto import tqdm

    from anoncodec.evaluation.heldout import heads_found
    from anoncodec.evaluation.metrics import psnr_outside

    def empty() -> dict[str, dict[str, list]]:
        return {d: {"heads": [], "background": []} for d in DETECTORS}

    out: dict[str, Any] = {"original": empty()}
    for key in methods:
        out[key] = {"bytes": [], "psnr_out": [], **empty()}
    bar = tqdm(
        total=len(clip.frames) * (1 + len(methods)),
        desc="heldout video",
        unit="frame",
        disable=not progress or None,
    )
    for frame, heads, others in zip(clip.frames, clip.heads, clip.background_heads):
        masked = np.concatenate([heads, clip.static_heads]).reshape(-1, 4)
        found = {}
        for name, dets in _detect(detectors, frame).items():
            found[name] = (heads_found(heads, dets), heads_found(others, dets))
            out["original"][name]["heads"].append(int(found[name][0].sum()))
            out["original"][name]["background"].append(int(found[name][1].sum()))
        bar.update()
        for key, method in methods.items():
            data = method.encode(frame)
            decoded = method.decode(data)
            row = out[key]
            row["bytes"].append(len(data))
            row["psnr_out"].append(float(psnr_outside(decoded, frame, masked)))
            for name, dets in _detect(detectors, decoded).items():
                again_heads = found[name][0] & heads_found(heads, dets)
                again_bg = found[name][1] & heads_found(others, dets)
                row[name]["heads"].append(int(again_heads.sum()))
                row[name]["background"].append(int(again_bg.sum()))
            bar.update()
    bar.close()
    return out


def summarize(
    key: str, label: str, params: dict[str, Any], row: dict[str, Any], fps: float
) -> dict[str, Any]:
    """One method's (or the original's) numbers from its per-frame row."""
    from anoncodec.evaluation.metrics import nan_mean

    summary: dict[str, Any] = {"key": key, "label": label, "params": params}
    if "bytes" in row:
        b = np.asarray(row["bytes"], np.float64)
        psnr = [p for p in row["psnr_out"] if math.isfinite(p)]
        summary.update(
            kbit_s=float(b.mean() * 8 * fps / 1000),
            bytes_per_frame={
                "mean": float(b.mean()),
                "median": float(np.median(b)),
                "p90": float(np.percentile(b, 90)),
            },
            psnr_out=nan_mean(psnr) if psnr else float("nan"),
        )
    for group in ("heads", "background"):
        summary[group] = {
            d: FrameRuns.from_flags([n > 0 for n in row[d][group]]).to_dict(fps)
            for d in DETECTORS
        }
    return summary
