"""Regions of interest: pixel boxes and the ROI loss.

``boxes`` is numpy only; ``loss`` needs torch and is imported lazily so that the data and
detector code can use boxes without loading torch.
"""

from anoncodec.roi.boxes import as_boxes, clip_boxes, scale_boxes, xywh_to_xyxy

__all__ = ["as_boxes", "clip_boxes", "scale_boxes", "xywh_to_xyxy"]
