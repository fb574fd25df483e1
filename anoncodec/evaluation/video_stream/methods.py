"""The methods of the video stream benchmark: a registry of method kinds, ``kind:value`` specs.

Protocol
--------
A *stream coder* codes a whole clip::

    coder(frames_rgb: Sequence[np.ndarray], fps: float) -> StreamOutput

It gets the clip's uint8 ``[H, W, 3]`` RGB frames in display order and its frame rate,
and returns a :class:`StreamOutput`: the frames a receiver decodes (same count and size,
display order) and the bytes each frame costs on the wire (display order; headers sent
once go in ``header_bytes``). The benchmark measures everything else (rate, PSNR, faces
found again, flicker, person recall) on that output, the same way for every method.

A *kind* is a family of methods named on the command line as ``kind:value``. It is one
registration::

    register_kind(MethodKind(
        "ours-cr", build_cr, value="NAME_OR_PATH", role="ours",
        label="ours + conditional replenishment ({value})",
        help="our codec with conditional replenishment",
    ))

where ``build_cr(value, context) -> coder`` gets the spec's value (here the checkpoint)
and the shared :class:`MethodContext` (torch device, the CenterFace detector, codec
presets, progress bars) and returns the coder; builders run before any frame is coded, so
a bad value fails early. ``role="ours"`` rows are the targets of the matched-recall table;
``role="baseline"`` kinds carry a default CRF ``ladder`` that ``--crf-ladder`` (or a spec
without a value) sweeps, and ``check`` normalizes and validates their values.

Registered here: ``ours`` (our codec intra-only: every frame coded alone with the
camera-side guard, as ``guard:`` of the held-out video benchmark), ``ours-noguard`` (the
encoder alone), ``ours-stream`` and ``ours-stream-noguard`` (the clip as one sequence,
``NAME@THRESHOLD`` for a replenishment threshold), ``h264``, ``h265``, ``av1`` (ffmpeg, CRF) and ``blur-h264``,
``blur-h265``, ``blur-av1`` (CenterFace + blur first).

May import numpy, tqdm, :mod:`anoncodec.errors`, :mod:`anoncodec.detectors` (lazily),
:mod:`anoncodec.evaluation.video_codecs` and
:mod:`anoncodec.evaluation.heldout_video.methods` (lazily: torch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anoncodec.errors import ConfigError
from anoncodec.evaluation import baselines
from anoncodec.evaluation.video_codecs import (
    CODECS,
    VideoCodecSettings,
    blur_faces,
    encode_decode,
)

__all__ = [
    "StreamOutput",
    "StreamCoder",
    "MethodContext",
    "MethodKind",
    "MethodSpec",
    "KINDS",
    "register_kind",
    "intra_coder",
    "parse_specs",
    "build_coders",
]


@dataclass(frozen=True)
class StreamOutput:
    """What a stream coder returns.

    Attributes:
        frames: decoded uint8 ``[H, W, 3]`` RGB frames, one per input frame.
        frame_bytes: bytes on the wire per frame, display order.
        header_bytes: bytes sent once for the stream (codec headers).
        params: what defines this output (settings, checkpoint, model id...).
    """

    frames: list[np.ndarray]
    frame_bytes: list[int]
    header_bytes: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return int(self.header_bytes + sum(self.frame_bytes))


StreamCoder = Callable[[Sequence[np.ndarray], float], StreamOutput]


@dataclass
class MethodContext:
    """What builders share.

    Attributes:
        device: torch device of our codec.
        centerface: CenterFace detector (built on first use when None).
        presets: per video codec (``h264``...), the preset to use instead of its default.
        keyint: keyframe interval of the video codecs (None: the encoder's default).
        progress: show per-frame progress bars.
    """

    device: str = "cpu"
    centerface: Any = None
    presets: Mapping[str, str] = field(default_factory=dict)
    keyint: int | None = None
    progress: bool = False

    def face_detector(self) -> Any:
        """The shared CenterFace detector."""
        if self.centerface is None:
            from anoncodec.detectors import CenterFaceDetector

            self.centerface = CenterFaceDetector()
        return self.centerface


@dataclass(frozen=True)
class MethodKind:
    """A family of methods, ``kind:value`` on the command line.

    Attributes:
        name: kebab-case name, the part before the colon.
        build: ``(value, context) -> StreamCoder``.
        value: what the value is, for help and errors (``CRF``, ``NAME_OR_PATH``).
        role: ``"ours"`` (a target of the matched-recall table) or ``"baseline"``.
        label: table label, ``{value}`` replaced by the value.
        help: one line.
        ladder: a baseline's default rate points (``--crf-ladder``, or no value given).
        check: value -> normalized value, raising :class:`ConfigError` (None: any
            non-empty value).
    """

    name: str
    build: Callable[[str, MethodContext], StreamCoder]
    value: str
    role: str
    label: str
    help: str
    ladder: tuple[str, ...] = ()
    check: Callable[[str], str] | None = None

    def __post_init__(self) -> None:
        if self.role not in ("ours", "baseline"):
            raise ConfigError(f"method kind {self.name!r}: role {self.role!r}; "
                              "expected 'ours' or 'baseline'")


KINDS: dict[str, MethodKind] = {}


def register_kind(kind: MethodKind) -> MethodKind:
    """Add a kind to :data:`KINDS` (see the module docstring).

    Raises:
        ConfigError: a kind of that name is registered already.
    """
    if kind.name in KINDS:
        raise ConfigError(f"method kind {kind.name!r} is registered already")
    KINDS[kind.name] = kind
    return kind


def intra_coder(method: Any, progress: bool = False) -> StreamCoder:
    """A stream coder over a per-frame method (each frame coded alone).

    Args:
        method: has ``encode(frame_rgb) -> bytes``, ``decode(bytes) -> frame_rgb``,
            ``key`` and ``params`` (:class:`anoncodec.evaluation.methods.Method`).
        progress: a progress bar over the frames.
    """
    from tqdm.auto import tqdm

    def coder(frames_rgb: Sequence[np.ndarray], fps: float) -> StreamOutput:
        decoded, sizes = [], []
        for frame in tqdm(frames_rgb, desc=method.key, unit="frame", leave=False,
                          disable=not progress or None):
            data = method.encode(frame)
            decoded.append(np.asarray(method.decode(data), np.uint8))
            sizes.append(len(data))
        return StreamOutput(decoded, sizes, 0, dict(method.params))

    return coder


# ------------------------------------------------------------------ registered kinds


def _ours(family: str) -> Callable[[str, MethodContext], StreamCoder]:
    def build(value: str, context: MethodContext) -> StreamCoder:
        from anoncodec.evaluation.heldout_video.methods import build_methods

        methods = build_methods([(value, family, value)], context.device,
                                context.face_detector())
        return intra_coder(methods[value], context.progress)

    return build


def _stream_value(value: str) -> tuple[str, float | None]:
    """``NAME_OR_PATH[@THRESHOLD]`` -> checkpoint, replenishment threshold (None: the default)."""
    checkpoint, at, threshold = value.rpartition("@") if "@" in value else (value, "", "")
    if not at:
        return value, None
    try:
        number = float(threshold)
    except ValueError:
        number = -1.0
    if not checkpoint or not number >= 0:
        raise ConfigError(f"stream value {value!r}; expected NAME_OR_PATH or NAME_OR_PATH@THRESHOLD "
                          "with a threshold >= 0 (e.g. mid@0.01)")
    return checkpoint, number


def _check_stream(value: str) -> str:
    _stream_value(value)
    return value


def _stream(guarded: bool) -> Callable[[str, MethodContext], StreamCoder]:
    def build(value: str, context: MethodContext) -> StreamCoder:
        from anoncodec.edge.guard import FaceGuard, GuardConfig
        from anoncodec.evaluation.stream_method import stream_method
        from anoncodec.replenish import ReplenishConfig

        checkpoint, threshold = _stream_value(value)
        config = ReplenishConfig() if threshold is None else ReplenishConfig(threshold=threshold)
        guard = FaceGuard(GuardConfig(), detector=context.face_detector()) if guarded else None
        return intra_coder(stream_method(checkpoint, context.device, guard, config), context.progress)

    return build


def _crf_check(codec: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        try:
            crf = int(value)
        except ValueError:
            crf = None
        lo, hi = CODECS[codec].crf_range
        if crf is None or not lo <= crf <= hi:
            raise ConfigError(f"{codec} CRF {value!r}; expected an integer {lo}..{hi}")
        return str(crf)

    return check


def _ffmpeg(codec: str, blur: bool) -> Callable[[str, MethodContext], StreamCoder]:
    def build(value: str, context: MethodContext) -> StreamCoder:
        settings = VideoCodecSettings(codec, int(value), context.presets.get(codec),
                                      context.keyint)
        params = settings.to_dict()
        detector = None
        if blur:
            from anoncodec.evaluation.methods import ANONYMIZER_THRESHOLD

            detector = context.face_detector()
            params.update(face_threshold=ANONYMIZER_THRESHOLD,
                          mask_scale=baselines.DEFACE_MASK_SCALE,
                          face_detector=type(detector).__name__)

        def coder(frames_rgb: Sequence[np.ndarray], fps: float) -> StreamOutput:
            source = blur_faces(frames_rgb, detector) if blur else frames_rgb
            coded = encode_decode(source, fps, settings)
            return StreamOutput(coded.frames, coded.frame_bytes, coded.header_bytes,
                                dict(params))

        return coder

    return build


_LADDERS = {"h264": (23, 28, 33, 38, 43), "h265": (23, 28, 33, 38, 43),
            "av1": (30, 38, 46, 54, 62)}

register_kind(MethodKind(
    "ours", _ours("guard"), "NAME_OR_PATH", "ours", "ours + guard ({value})",
    "our codec, every frame coded alone, with the camera-side guard (heads CenterFace "
    "finds erased from the latent): real packets",
))
register_kind(MethodKind(
    "ours-stream", _stream(True), "NAME_OR_PATH[@THRESHOLD]", "ours", "ours + guard, stream ({value})",
    "our codec coding the clip as one sequence (keyframes, then only the latent cells that changed: "
    "anoncodec camera --mode stream), with the guard: real version-2 packets; @THRESHOLD sets "
    "--replenish-threshold (0: every changed cell)", check=_check_stream,
))
register_kind(MethodKind(
    "ours-stream-noguard", _stream(False), "NAME_OR_PATH[@THRESHOLD]", "ours", "ours, stream, no guard ({value})",
    "the same sequence without the guard", check=_check_stream,
))
register_kind(MethodKind(
    "ours-noguard", _ours("ours"), "NAME_OR_PATH", "ours", "ours, no guard ({value})",
    "our codec, every frame coded alone, the encoder alone (no guard)",
))
for _codec, _spec in CODECS.items():
    for _blur in (False, True):
        register_kind(MethodKind(
            f"blur-{_codec}" if _blur else _codec, _ffmpeg(_codec, _blur), "CRF",
            "baseline",
            ("CenterFace + blur + " if _blur else "") + f"{_spec.label} CRF {{value}}",
            ("CenterFace (0.2, boxes grown 1.3x) + Gaussian blur, then " if _blur else "")
            + f"{_spec.label} via ffmpeg at constant rate factor CRF",
            tuple(str(c) for c in _LADDERS[_codec]), _crf_check(_codec),
        ))


# ------------------------------------------------------------------------ specs


@dataclass(frozen=True)
class MethodSpec:
    """One method at one rate point: ``key`` is ``kind:value``."""

    kind: str
    value: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"

    @property
    def label(self) -> str:
        return KINDS[self.kind].label.format(value=self.value)

    @property
    def role(self) -> str:
        return KINDS[self.kind].role


def parse_specs(
    specs: Sequence[str], sweep: bool = False, ladder: Sequence[int] | None = None
) -> list[MethodSpec]:
    """``--method`` values -> checked :class:`MethodSpec` s, in order (ladders ascending).

    A baseline given without a value runs over its ladder; with ``sweep``, one given with
    a value does too (the value joins the ladder).

    Args:
        specs: ``kind:value`` or, for a baseline, ``kind``.
        sweep: run every baseline over its ladder (``--crf-ladder``).
        ladder: the CRFs of every ladder instead of each kind's default.

    Raises:
        ConfigError: unknown kind, missing or bad value, a method given twice.
    """
    out: list[MethodSpec] = []
    given: set[MethodSpec] = set()
    for spec in specs:
        name, sep, value = str(spec).strip().partition(":")
        kind = KINDS.get(name)
        if kind is None:
            raise ConfigError(
                f"--method {spec!r}: unknown kind {name!r}; expected one of "
                f"{sorted(KINDS)} as KIND:VALUE, e.g. blur-h264:28 or ours:mid"
            )
        value = value.strip()
        if kind.role != "baseline" and not value:
            raise ConfigError(f"--method {spec!r}: name the {kind.value}, e.g. {name}:mid")
        values = [value] if value else []
        if kind.role == "baseline" and (sweep or not value):
            values += [str(c) for c in ladder] if ladder else list(kind.ladder)
        if kind.check is not None:
            values = [kind.check(v) for v in values]
        if kind.role == "baseline":
            values = sorted(set(values), key=int)
        if value:
            item = MethodSpec(name, kind.check(value) if kind.check else value)
            if item in given:
                raise ConfigError(f"--method lists {item.key!r} more than once")
            given.add(item)
        out += [i for i in (MethodSpec(name, v) for v in values) if i not in out]
    return out


def build_coders(
    specs: Sequence[MethodSpec], context: MethodContext
) -> dict[str, StreamCoder]:
    """``{key: coder}`` in ``specs`` order (checkpoints are loaded here)."""
    return {s.key: KINDS[s.kind].build(s.value, context) for s in specs}
