"""What every config dataclass shares: validation errors and the dict round trip.

Stdlib only. ``to_dict`` output is what checkpoints store and what model ids hash, so it
must not change.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from anoncodec.errors import ConfigError

T = TypeVar("T")

#: ``(class name, field) -> config class`` of the fields holding nested configs (or tuples
#: of them); the modules defining those classes register them.
_NESTED: dict[tuple[str, str], type] = {}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


class _Serializable:
    """``to_dict``/``from_dict`` for (nested) frozen dataclasses; unknown keys are errors."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a table/mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown key(s) {unknown}; expected some of {sorted(fields)}"
            )
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            sub = _NESTED.get((cls.__name__, name))
            if sub is not None and isinstance(value, list):
                value = tuple(sub.from_dict(v) for v in value)
            elif sub is not None:
                value = sub.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from exc
