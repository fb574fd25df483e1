"""Held-out benchmark: our checkpoints against codecs and anonymizers at the same bytes.

Runs on the ``test`` split of a ``labels.json`` (:mod:`anoncodec.data.labeled`), whose
head and person boxes are exact. Every image is encoded by each of our checkpoints (one
rate point each, real packet) and by the conventional baselines, each baseline at the
quality whose file is the largest not above the bytes of a reference checkpoint on that
same image (:func:`match_quality`). On the original and on every output it measures:

- bytes and bpp of the real file or packet, PSNR outside the heads;
- heads found by four face detectors (MTCNN with every face its cascade accepts, MTCNN
  with p >= 0.9, CenterFace at 0.2, CenterFace at 0.2 on a 2x upscale): a head is found
  when a detection's center lies inside it (:func:`heads_found`); per detector, how
  many of the heads found on the original are found again on the output
  (:class:`FoundAgain`);
- identity matches: dlib descriptor distance < 0.6 between the original and the
  output at the faces dlib can embed on the original (as
  :mod:`anoncodec.evaluation.leakage`);
- persons kept: persons the served detector (YOLO, conf 0.25) and a second, COCO
  detector (YOLO11n-pose, conf 0.25) find on the original and again on the output, IoU
  >= 0.5, one to one (:func:`match_persons`);
- for our checkpoints, the entropy model's bits under the ground-truth heads and the
  share of latent elements coded as the median there (:func:`latent_head_stats`).

The package may import numpy, opencv, torch (our codec and MTCNN),
:mod:`anoncodec.codec`, :mod:`anoncodec.data`, :mod:`anoncodec.detectors`,
:mod:`anoncodec.roi` and the other evaluation modules; never training, serving or cli.
``benchmarks/heldout.py`` is the script around it.

Its modules, each importing only those above it: ``settings`` (detector tables,
thresholds), ``data`` (test split, resizing), ``matching`` (baselines, same-bytes
search), ``measures`` (heads found, found again, persons kept, bits under heads),
``detectors`` (the instruments, the original's analysis), ``run`` (every method on every
image), ``summary`` (report rows), ``report`` (markdown).
"""

from anoncodec.evaluation.heldout.data import HeldoutImage, load_heldout, resize_image
from anoncodec.evaluation.heldout.detectors import HeldoutDetectors, OriginalAnalysis
from anoncodec.evaluation.heldout.matching import (
    BASELINES,
    Baseline,
    MatchedEncoding,
    match_quality,
)
from anoncodec.evaluation.heldout.measures import (
    FoundAgain,
    LatentHeadStats,
    PersonsKept,
    heads_found,
    latent_head_stats,
    match_persons,
)
from anoncodec.evaluation.heldout.report import markdown_report
from anoncodec.evaluation.heldout.run import ImageRow, OursPoint, run_heldout
from anoncodec.evaluation.heldout.run import measure as measure
from anoncodec.evaluation.heldout.settings import (
    FACE_DETECTORS,
    PERSON_DETECTORS,
    HeldoutSettings,
)
from anoncodec.evaluation.heldout.summary import (
    MethodSummary,
    add_plain_rd,
    summarize,
)

__all__ = [
    "BASELINES",
    "FACE_DETECTORS",
    "PERSON_DETECTORS",
    "Baseline",
    "FoundAgain",
    "HeldoutDetectors",
    "HeldoutImage",
    "HeldoutSettings",
    "ImageRow",
    "LatentHeadStats",
    "MatchedEncoding",
    "MethodSummary",
    "OriginalAnalysis",
    "OursPoint",
    "PersonsKept",
    "add_plain_rd",
    "heads_found",
    "latent_head_stats",
    "load_heldout",
    "markdown_report",
    "match_persons",
    "match_quality",
    "resize_image",
    "run_heldout",
    "summarize",
]
