"""The checkpoint ladder: released checkpoints chosen by name (``ladder.toml`` beside this file).

``ladder.toml`` holds one ``[[checkpoint]]`` table per released checkpoint (``name``,
``file``, ``config``, ``target_bpp``, ``description``) and a top-level
``default = "<name>"``. Releasing another rate point means editing that file and dropping
the ``.pt`` beside it; nothing here knows any name.

:func:`resolve_checkpoint` is what every ``--checkpoint`` flag goes through::

    None or ""          -> $ANONCODEC_CHECKPOINT (itself a name or a path) if set, else the default
    "demo"              -> anoncodec/weights/demo_factorized.pt (a ladder name)
    "runs/x/last.pt"    -> that file, unchanged (it must exist)

Stdlib only (``tomllib``) plus :mod:`anoncodec.errors`, so ``anoncodec --help`` can list
the names without loading torch.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anoncodec.errors import ConfigError

__all__ = [
    "CHECKPOINT_ENV",
    "LADDER_FILE",
    "LadderEntry",
    "list_checkpoints",
    "default_checkpoint",
    "resolve_checkpoint",
]

LADDER_FILE = Path(__file__).with_name("ladder.toml")
CHECKPOINT_ENV = "ANONCODEC_CHECKPOINT"

_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TOP_KEYS = ("default", "checkpoint")
_ENTRY_KEYS = ("name", "file", "config", "target_bpp", "description")
_CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


@dataclass(frozen=True)
class LadderEntry:
    """One released checkpoint of the ladder.

    Args:
        name: what ``--checkpoint`` accepts, kebab-case (``"demo"``, ``"low"``).
        path: the ``.pt`` file (the ladder's folder joined with its ``file``).
        config: the committed training config that reproduces it, relative to the
            repository root (``"configs/demo.toml"``; configs do not ship in the wheel).
        target_bpp: the rate it was trained for, in bits per pixel (> 0).
        description: one line shown by ``anoncodec checkpoints``.
        is_default: whether the ladder's ``default`` names this entry.

    Raises:
        ConfigError: a field has the wrong type or value.
    """

    name: str
    path: Path
    config: str
    target_bpp: float
    description: str
    is_default: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError(f"name {self.name!r} is not kebab-case; expected lowercase letters, digits and "
                              "single '-' like 'mid' or 'low-2'")
        if not isinstance(self.config, str) or Path(self.config).is_absolute() \
                or Path(self.config).suffix.lower() not in _CONFIG_SUFFIXES:
            raise ConfigError(f"config {self.config!r} is not a relative path to a training config; expected "
                              f"something like 'configs/{self.name}.toml' (one of {', '.join(_CONFIG_SUFFIXES)})")
        bpp = self.target_bpp
        if isinstance(bpp, bool) or not isinstance(bpp, (int, float)) or not math.isfinite(bpp) or bpp <= 0:
            raise ConfigError(f"target_bpp {bpp!r} is not a positive number of bits per pixel; expected e.g. 0.25")
        object.__setattr__(self, "target_bpp", float(bpp))
        if not isinstance(self.description, str) or not self.description.strip() or "\n" in self.description:
            raise ConfigError(f"description {self.description!r} is not one non-empty line; write a one-line "
                              "summary of the checkpoint")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``path`` as a string)."""
        return {"name": self.name, "path": str(self.path), "config": self.config,
                "target_bpp": self.target_bpp, "description": self.description, "is_default": self.is_default}


def _read(ladder_file: Path) -> dict[str, Any]:
    import tomllib

    try:
        text = ladder_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the checkpoint ladder {str(ladder_file)!r}: {exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot parse the checkpoint ladder {ladder_file}: {exc}; fix its TOML syntax") from exc


def list_checkpoints(ladder_file: str | os.PathLike[str] | None = None) -> list[LadderEntry]:
    """The released checkpoints, in the ladder's order.

    Args:
        ladder_file: the ladder to read (default: :data:`LADDER_FILE`, the one that ships).

    Returns:
        One :class:`LadderEntry` per ``[[checkpoint]]`` table; exactly one is the default.

    Raises:
        ConfigError: the file is unreadable or not TOML, has unknown or missing keys, names
            a ``.pt`` that is not beside it, repeats a name, or its ``default`` is no name.
    """
    ladder_file = LADDER_FILE if ladder_file is None else Path(ladder_file)
    data = _read(ladder_file)
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"{ladder_file}: unknown top-level key(s) {unknown}; expected only 'default' and "
                          "[[checkpoint]] tables")
    tables = data.get("checkpoint")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{ladder_file}: expected one or more [[checkpoint]] tables, got {tables!r}")
    default = data.get("default")
    if not isinstance(default, str):
        raise ConfigError(f"{ladder_file}: default = {default!r}; expected default = \"<name>\" at the top, "
                          "naming one [[checkpoint]]")
    entries: list[LadderEntry] = []
    for number, table in enumerate(tables, start=1):
        where = f"{ladder_file}: [[checkpoint]] #{number}" + (f" ({table['name']!r})" if "name" in table else "")
        unknown = sorted(set(table) - set(_ENTRY_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; expected only {', '.join(_ENTRY_KEYS)}")
        missing = [key for key in _ENTRY_KEYS if key not in table]
        if missing:
            raise ConfigError(f"{where}: missing key(s) {missing}; every checkpoint needs {', '.join(_ENTRY_KEYS)}")
        file = table["file"]
        if not isinstance(file, str) or not file or Path(file).is_absolute():
            raise ConfigError(f"{where}: file {file!r} is not a path relative to {ladder_file.parent}; expected "
                              "the .pt's name, e.g. 'demo_factorized.pt'")
        try:
            entry = LadderEntry(name=table["name"], path=ladder_file.parent / file, config=table["config"],
                                target_bpp=table["target_bpp"], description=table["description"],
                                is_default=table["name"] == default)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not entry.path.is_file():
            raise ConfigError(f"{where}: file {file!r} does not exist in {ladder_file.parent}; drop the .pt "
                              f"beside {ladder_file.name} (python -m anoncodec.weights.release) or remove the entry")
        if any(e.name == entry.name for e in entries):
            raise ConfigError(f"{where}: the name {entry.name!r} is used twice; give each checkpoint its own name")
        entries.append(entry)
    if not any(e.is_default for e in entries):
        raise ConfigError(f"{ladder_file}: default = {default!r} is not a checkpoint name; expected one of "
                          f"{', '.join(repr(e.name) for e in entries)}")
    return entries


def default_checkpoint(ladder_file: str | os.PathLike[str] | None = None) -> LadderEntry:
    """The entry the ladder's ``default`` names.

    This ignores ``$ANONCODEC_CHECKPOINT``; ``resolve_checkpoint(None)`` honours it.

    Args:
        ladder_file: the ladder to read (default: :data:`LADDER_FILE`).

    Raises:
        ConfigError: the ladder is invalid (see :func:`list_checkpoints`).
    """
    return next(e for e in list_checkpoints(ladder_file) if e.is_default)


def _names(entries: list[LadderEntry]) -> str:
    return ", ".join(repr(e.name) + (" (default)" if e.is_default else "") for e in entries)


def resolve_checkpoint(spec: str | os.PathLike[str] | None,
                       ladder_file: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint file that a ``--checkpoint`` value means.

    Args:
        spec: ``None`` or ``""``: ``$ANONCODEC_CHECKPOINT`` if set (resolved like a
            ``spec``), else the ladder's default. A ladder name: its ``.pt``. Anything
            else: the path of an existing file, returned unchanged. A name wins over a
            file of the same name in the working directory (write ``./demo`` for that);
            an ``os.PathLike`` is always taken as a path.
        ladder_file: the ladder to read (default: :data:`LADDER_FILE`).

    Returns:
        Path of the checkpoint file (it exists when this returns).

    Raises:
        ConfigError: ``spec`` (or ``$ANONCODEC_CHECKPOINT``) is neither a name nor an
            existing file (the message lists the names), or the ladder is invalid.
    """
    if isinstance(spec, os.PathLike):
        given, text = f"checkpoint {os.fspath(spec)!r}", os.fspath(spec)
    else:
        text = spec or ""
        given = f"checkpoint {text!r}"
        if not text:
            text = os.environ.get(CHECKPOINT_ENV, "")
            if not text:
                return default_checkpoint(ladder_file).path
            given = f"${CHECKPOINT_ENV}={text!r}"
        if _NAME.fullmatch(text):  # a path can't be a name: only name-like values read the ladder first
            for entry in list_checkpoints(ladder_file):
                if entry.name == text:
                    return entry.path
    path = Path(text)
    if path.is_file():
        return path
    raise ConfigError(f"{given} is neither a released checkpoint name nor an existing file; expected one of "
                      f"the names {_names(list_checkpoints(ladder_file))} or the path of a .pt checkpoint; "
                      "`anoncodec checkpoints` describes the names")
