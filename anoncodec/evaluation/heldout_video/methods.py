"""The ``--method`` specs of the held-out video benchmark and the methods they build.

May import :mod:`anoncodec.errors`, :mod:`anoncodec.edge.guard` and
:mod:`anoncodec.evaluation.methods` (lazily: they load torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["CHECKPOINT_FAMILIES", "DEFAULT_BASELINES", "FAMILIES", "build_methods", "parse_methods"]

FAMILIES = ("ours", "guard", "stream", "guard-stream", "jpeg", "blur-jpeg")
# stream, guard-stream: the clip coded as one sequence (keyframes and deltas, version-2 packets)
CHECKPOINT_FAMILIES = ("ours", "guard", "stream", "guard-stream")
DEFAULT_BASELINES = ("jpeg:10", "blur-jpeg:10")


def parse_methods(
    specs: Sequence[str] | None, default_ours: str = "demo"
) -> list[tuple[str, str, str]]:
    """``--method`` values -> ``(key, family, value)``, checked.

    Args:
        specs: the ``--method`` values; none: ``ours:<default_ours>`` and
            :data:`DEFAULT_BASELINES`.
        default_ours: checkpoint of the default ``ours`` row.

    Raises:
        ConfigError: unknown family, no checkpoint, a bad quality or a spec given twice.
    """
    from anoncodec.errors import ConfigError

    if not specs:
        specs = [f"ours:{default_ours}", *DEFAULT_BASELINES]
    parsed = []
    for spec in specs:
        family, sep, value = spec.partition(":")
        if family not in FAMILIES or not sep:
            raise ConfigError(
                f"--method {spec!r}; expected ours:NAME_OR_PATH, guard:NAME_OR_PATH, stream:NAME_OR_PATH, "
                "guard-stream:NAME_OR_PATH, jpeg:Q or blur-jpeg:Q (e.g. --method jpeg:10)"
            )
        if family in CHECKPOINT_FAMILIES and not value:
            raise ConfigError(f"--method {spec!r}: name the checkpoint, e.g. {family}:demo")
        if family not in CHECKPOINT_FAMILIES:
            try:
                quality = int(value)
            except ValueError:
                quality = 0
            if not 1 <= quality <= 100:
                raise ConfigError(
                    f"--method {spec!r}: quality {value!r}; expected an integer "
                    f"1..100, e.g. {family}:10"
                )
            value = str(quality)
        parsed.append((f"{family}:{value}", family, value))
    keys = [k for k, _, _ in parsed]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"--method lists {twice} more than once")
    return parsed


def build_methods(
    parsed: Sequence[tuple[str, str, str]], device: str, centerface: Any
) -> dict[str, Any]:
    """``{key: Method}`` in ``parsed`` order (checkpoints are loaded here)."""
    from anoncodec.evaluation.methods import (
        ANONYMIZER_THRESHOLD,
        anonymizer_method,
        codec_method,
        jpeg_method,
    )

    methods = {}
    for key, family, value in parsed:
        if family == "ours":
            methods[key] = codec_method(value, device)
        elif family == "guard":
            from anoncodec.edge.guard import FaceGuard, GuardConfig

            methods[key] = codec_method(value, device, FaceGuard(GuardConfig(), detector=centerface))
        elif family in ("stream", "guard-stream"):
            from anoncodec.edge.guard import FaceGuard, GuardConfig
            from anoncodec.evaluation.stream_method import stream_method

            guard = FaceGuard(GuardConfig(), detector=centerface) if family == "guard-stream" else None
            methods[key] = stream_method(value, device, guard)
        elif family == "jpeg":
            methods[key] = jpeg_method(int(value))
        else:
            methods[key] = anonymizer_method(
                "blur", int(value), centerface, ANONYMIZER_THRESHOLD
            )
    return methods
