"""The annotated image record every loader returns.

May import numpy and :mod:`anoncodec.roi.boxes`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from anoncodec.roi.boxes import as_boxes

__all__ = ["AnnotatedImage"]

logger = logging.getLogger(__name__)


@dataclass
class AnnotatedImage:
    """One image (or video frame) with its person and head boxes.

    Attributes:
        id: unique id within its source (CrowdHuman ``ID``, COCO image id, ``video:frame``).
        path: image file to load (RGB after decoding).
        persons_xyxy: float32 ``[K, 4]`` person boxes in image pixels (x2/y2 exclusive).
        heads_xyxy: float32 ``[J, 4]`` head boxes in image pixels (the anonymization ROI).
        group: split unit; all items of a group land in the same split (image id for photo
            datasets, a contiguous time block for videos).
        order: frame index in the source video; 0 for photos.
        sequence: id of the video the frame comes from; ``""`` for photos. Frames of one
            sequence are split along time (validation = tail of the time line).
        split: ``"train"``, ``"val"`` or ``"test"`` when the source fixes it (labeled
            composites, split by identity and scene); ``""`` lets ``split_items`` decide.
    """

    id: str
    path: str
    persons_xyxy: np.ndarray
    heads_xyxy: np.ndarray
    group: str
    order: int = 0
    sequence: str = field(default="")
    split: str = field(default="")

    def __post_init__(self) -> None:
        self.persons_xyxy = as_boxes(self.persons_xyxy)
        self.heads_xyxy = as_boxes(self.heads_xyxy)
