"""Video stream benchmark: our codec against CenterFace + blur + H.264/H.265/AV1 on a clip.

``benchmarks/video_stream.py`` is the script around it (its docstring describes the
measurement); the clip comes from :mod:`anoncodec.evaluation.heldout_video`, the codecs
from :mod:`anoncodec.evaluation.video_codecs`, the measures from
:mod:`anoncodec.evaluation.video_quality`. The package may import numpy, tqdm, torch (our
codec, PSNR-out; lazily), :mod:`anoncodec.detectors` and the other evaluation modules;
never training, serving or cli.

Its modules, each importing only those above it: ``methods`` (the registry of method
kinds; its docstring states the protocol a new kind follows), ``measure`` (per-frame
numbers, summaries, the matched-recall table), ``report`` (markdown, plot).
"""

from anoncodec.evaluation.video_stream.measure import (
    Instruments,
    OriginalAnalysis,
    matched_recall,
    measure_stream,
    summarize_original,
    summarize_stream,
)
from anoncodec.evaluation.video_stream.methods import (
    KINDS,
    MethodContext,
    MethodKind,
    MethodSpec,
    StreamCoder,
    StreamOutput,
    build_coders,
    intra_coder,
    parse_specs,
    register_kind,
)
from anoncodec.evaluation.video_stream.report import markdown_report, plot_rate_recall

__all__ = [
    "KINDS",
    "Instruments",
    "MethodContext",
    "MethodKind",
    "MethodSpec",
    "OriginalAnalysis",
    "StreamCoder",
    "StreamOutput",
    "build_coders",
    "intra_coder",
    "markdown_report",
    "matched_recall",
    "measure_stream",
    "parse_specs",
    "plot_rate_recall",
    "register_kind",
    "summarize_original",
    "summarize_stream",
]
