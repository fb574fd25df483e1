"""Person detectors compared without labels: recall against the consensus of the detectors.

Numpy, :func:`~anoncodec.detectors.nms.box_iou` and the held-out benchmark's one-to-one
person matching (:func:`~anoncodec.evaluation.heldout.measures.match_persons`). There is
no labeled pedestrian set offline, so the reference boxes of an image are the *consensus*:
every box that at least ``min_votes`` of the independent detectors find (matched at IoU >=
``iou``; the reference box is the mean of the matched boxes). A detector's recall is then
the share of reference boxes it finds, per person size. Say so wherever these numbers are
quoted: a person no two detectors find is in no one's recall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anoncodec.detectors.nms import box_iou
from anoncodec.evaluation.heldout.measures import match_persons

__all__ = ["SIZE_BUCKETS", "consensus_boxes", "size_bucket", "Recall", "recall_by_size"]

#: person heights in frame pixels: (label, lower bound inclusive, upper bound exclusive)
SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("small (<100 px)", 0.0, 100.0),
    ("medium (100-300 px)", 100.0, 300.0),
    ("large (>=300 px)", 300.0, float("inf")),
)


def _boxes(b: np.ndarray) -> np.ndarray:
    return np.asarray(b, np.float32).reshape(-1, np.shape(b)[-1] if np.size(b) else 4)[:, :4]


def consensus_boxes(detections: Sequence[np.ndarray], min_votes: int = 2, iou: float = 0.5) -> np.ndarray:
    """float32 ``[K, 4]`` boxes found by at least ``min_votes`` of ``detections`` (one array per
    detector, ``[N, 4]`` or ``[N, 5]``), each the mean of its matched boxes.

    Greedy: every box of every detector starts or joins a cluster (the best-overlapping
    cluster with IoU >= ``iou`` that has no box of that detector yet).
    """
    clusters: list[tuple[list[np.ndarray], set[int]]] = []
    for k, dets in enumerate(detections):
        for box in _boxes(dets):
            best, best_iou = None, iou
            for c, (members, voters) in enumerate(clusters):
                if k in voters:
                    continue
                overlap = float(box_iou(box, np.mean(members, axis=0)[None])[0])
                if overlap >= best_iou:
                    best, best_iou = c, overlap
            if best is None:
                clusters.append(([box], {k}))
            else:
                clusters[best][0].append(box)
                clusters[best][1].add(k)
    kept = [np.mean(m, axis=0) for m, voters in clusters if len(voters) >= min_votes]
    return np.array(kept, np.float32).reshape(-1, 4)


def size_bucket(box: np.ndarray) -> str:
    """The :data:`SIZE_BUCKETS` label of a box's height."""
    height = float(box[3] - box[1])
    return next(label for label, lo, hi in SIZE_BUCKETS if lo <= height < hi)


@dataclass
class Recall:
    """Found / reference boxes, per size bucket and in all."""

    found: dict[str, int]
    total: dict[str, int]

    def share(self, bucket: str | None = None) -> float | None:
        """Recall in ``bucket`` (None: all sizes); None when it holds no reference box."""
        found = sum(self.found.values()) if bucket is None else self.found[bucket]
        total = sum(self.total.values()) if bucket is None else self.total[bucket]
        return None if total == 0 else found / total


def recall_by_size(references: Sequence[np.ndarray], detections: Sequence[np.ndarray],
                   iou: float = 0.5) -> Recall:
    """Recall of one detector over images: ``references[i]`` and ``detections[i]`` are the
    reference and detected boxes of image ``i``; each detection matches one reference at most."""
    found = {label: 0 for label, _, _ in SIZE_BUCKETS}
    total = dict(found)
    for ref, det in zip(references, detections):
        ref = _boxes(ref)
        for box, matched in zip(ref, match_persons(ref, _boxes(det), iou)):
            bucket = size_bucket(box)
            total[bucket] += 1
            found[bucket] += int(matched)
    return Recall(found, total)
