"""Training data: dataset loaders, auto-annotation of footage, splits and ROI crops.

May import numpy, PIL, opencv, torch, :mod:`anoncodec.errors`, :mod:`anoncodec.config`,
:mod:`anoncodec.frames` (the one frame reader), :mod:`anoncodec.roi.boxes` and
:mod:`anoncodec.detectors`; never codec, training or edge.
Every loader returns a list of :class:`AnnotatedImage` (pixel ``xyxy`` boxes).
``RoiCropDataset`` and ``collate_roi`` are imported lazily, so the loaders work (and load
fast) without importing torch.
"""

from typing import Any

from anoncodec.data.coco import keypoints_to_head_box, load_coco
from anoncodec.data.crowdhuman import load_crowdhuman
from anoncodec.data.footage import load_footage
from anoncodec.data.footage_cache import ANNOTATOR_VERSION, default_cache_dir
from anoncodec.data.heads import heads_from_detections, person_to_head_box
from anoncodec.data.labeled import load_labeled
from anoncodec.data.sample import AnnotatedImage
from anoncodec.data.sources import load_source
from anoncodec.data.splits import split_items
from anoncodec.data.transforms import (
    CropParams,
    apply_crop,
    center_crop_params,
    sample_crop_params,
    transform_boxes,
)

__all__ = [
    "AnnotatedImage",
    "load_crowdhuman",
    "load_coco",
    "keypoints_to_head_box",
    "load_footage",
    "load_labeled",
    "default_cache_dir",
    "person_to_head_box",
    "heads_from_detections",
    "ANNOTATOR_VERSION",
    "load_source",
    "split_items",
    "RoiCropDataset",
    "collate_roi",
    "CropParams",
    "sample_crop_params",
    "center_crop_params",
    "apply_crop",
    "transform_boxes",
]


def __getattr__(name: str) -> Any:
    if name in ("RoiCropDataset", "collate_roi"):
        from anoncodec.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
