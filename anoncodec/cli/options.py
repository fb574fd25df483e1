"""Building blocks of the subcommands' flags: checked value types and dataclass defaults.

Every flag that sets a config field takes its default from that field
(:func:`defaults_of`), so a default is written once, in the dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["defaults_of", "bounded", "positive_int", "positive_float", "non_negative_int",
           "non_negative_float"]


def defaults_of(cls: type) -> dict[str, Any]:
    """Field name -> declared default of dataclass ``cls`` (fields without one are left out)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def bounded(convert: Callable[[str], Any], lower: float, inclusive: bool, what: str) -> Callable[[str], Any]:
    """An argparse ``type`` that converts with ``convert`` and checks ``value >= lower`` (or ``>``)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (value >= lower if inclusive else value > lower):  # also refuses NaN
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


positive_int = bounded(int, 1, True, "a positive integer")
positive_float = bounded(float, 0, False, "a positive number")
non_negative_int = bounded(int, 0, True, "an integer >= 0")
non_negative_float = bounded(float, 0, True, "a number >= 0")
