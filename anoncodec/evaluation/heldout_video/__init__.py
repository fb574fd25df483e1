"""Held-out video benchmark: in how many frames of a clip with faces is a face found again,
and for how long in a row, per method, at what stream rate.

``benchmarks/heldout_video.py`` is the script around it (its docstring describes the clip
and the measurement). The package may import numpy, opencv, torch (our codec and MTCNN),
:mod:`anoncodec.frames`, :mod:`anoncodec.data`, :mod:`anoncodec.detectors`,
:mod:`anoncodec.edge.guard` and the other evaluation modules; never training, serving or cli.

Its modules, each importing only those above it: ``methods`` (``--method`` specs),
``faces`` (test-split face parts, CenterFace ground truth), ``clip`` (the composite clip
or a video file), ``measure`` (per-frame flags, bytes, PSNR-out, run lengths), ``report``
(markdown).
"""

from anoncodec.evaluation.heldout_video.clip import (
    BACKGROUNDS,
    FRAME_HW,
    HEAD_PX,
    Clip,
    composite_clip,
    face_path,
    video_clip,
)
from anoncodec.evaluation.heldout_video.faces import (
    LABEL_THRESHOLD,
    heads_of,
    heldout_faces,
)
from anoncodec.evaluation.heldout_video.measure import (
    DETECTORS,
    FrameRuns,
    measure,
    summarize,
)
from anoncodec.evaluation.heldout_video.methods import (
    CHECKPOINT_FAMILIES,
    DEFAULT_BASELINES,
    FAMILIES,
    build_methods,
    parse_methods,
)
from anoncodec.evaluation.heldout_video.report import markdown_report

__all__ = [
    "BACKGROUNDS",
    "CHECKPOINT_FAMILIES",
    "DEFAULT_BASELINES",
    "DETECTORS",
    "FAMILIES",
    "FRAME_HW",
    "HEAD_PX",
    "LABEL_THRESHOLD",
    "Clip",
    "FrameRuns",
    "build_methods",
    "composite_clip",
    "face_path",
    "heads_of",
    "heldout_faces",
    "markdown_report",
    "measure",
    "parse_methods",
    "summarize",
    "video_clip",
]
