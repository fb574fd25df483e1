"""Read a Triton ``config.pbtxt``: the model's name, platform/backend and string parameters.

Stdlib only: the launcher, the fuzzer and the benchmarks read the configs that
:mod:`anoncodec.serving.repository` writes, and code Triton's python backend loads must
not need ``tritonclient`` (whose ``model_config_pb2`` a unit test checks this against).

The file is protobuf text format; :func:`parse_text_format` reads it into nested dicts
without the schema: ``{field: [value, ...]}`` (every field may repeat), a value being a
``str`` (strings unescaped; numbers and enum names as written) or a nested dict.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from anoncodec.errors import ConfigError

__all__ = ["ModelConfig", "parse_text_format", "read_model_config"]

Message = dict[str, list[Union[str, "Message"]]]

_TOKEN = re.compile(r"""
    \s+ | \#[^\n]*                                   # space, comments
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[{}\[\]:,;<>])
  | (?P<word>[-+.\w]+)
""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None:
            line = text.count("\n", 0, pos) + 1
            raise ConfigError(f"config.pbtxt line {line}: unexpected {text[pos:pos + 20]!r}")
        pos = found.end()
        kind = found.lastgroup
        if kind is not None:
            out.append((kind, found.group(kind)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens, self.i = _tokens(text), 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (expected is not None and token[1] != expected):
            raise ConfigError(f"config.pbtxt: expected {expected or 'a value'}, got "
                              f"{'the end' if token is None else repr(token[1])}")
        self.i += 1
        return token

    def message(self, close: str | None) -> Message:
        fields: Message = {}
        while (token := self.peek()) is not None and token[1] != close:
            kind, name = self.take()
            if kind != "word":
                raise ConfigError(f"config.pbtxt: expected a field name, got {name!r}")
            if self.peek() == ("punct", ":"):
                self.take(":")
            values = fields.setdefault(name, [])
            if self.peek() == ("punct", "["):
                self.take("[")
                while self.peek() != ("punct", "]"):
                    values.append(self.value())
                    if self.peek() == ("punct", ","):
                        self.take(",")
                self.take("]")
            else:
                values.append(self.value())
            if self.peek() in (("punct", ","), ("punct", ";")):
                self.take()
        if close is not None:
            self.take(close)
        return fields

    def value(self) -> str | Message:
        kind, text = self.take()
        if text in ("{", "<"):
            return self.message("}" if text == "{" else ">")
        if kind == "string":  # adjacent strings concatenate
            parts = [ast.literal_eval(text)]
            while (token := self.peek()) is not None and token[0] == "string":
                parts.append(ast.literal_eval(self.take()[1]))
            return "".join(parts)
        if kind == "word":
            return text
        raise ConfigError(f"config.pbtxt: expected a value, got {text!r}")


def parse_text_format(text: str) -> Message:
    """Parse protobuf text format into ``{field: [values]}`` (see the module docstring).

    Raises:
        ConfigError: the text is not protobuf text format.
    """
    return _Parser(text).message(None)


@dataclass(frozen=True)
class ModelConfig:
    """What anoncodec reads from a model's ``config.pbtxt``.

    Attributes:
        name: the model's name ("" if not set).
        platform: e.g. ``"onnxruntime_onnx"``, ``"ensemble"`` ("" if not set).
        backend: e.g. ``"python"`` ("" if not set).
        parameters: the string ``parameters`` map (what Triton hands a python stage).
    """

    name: str = ""
    platform: str = ""
    backend: str = ""
    parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str) -> ModelConfig:
        """Read the fields of a ``config.pbtxt``'s text.

        Raises:
            ConfigError: malformed text, or a parameter without a ``string_value``.
        """
        fields = parse_text_format(text)

        def scalar(name: str) -> str:
            values = fields.get(name, [])
            return values[-1] if values and isinstance(values[-1], str) else ""

        parameters = {}
        for entry in fields.get("parameters", []):
            key = entry.get("key", [""])[-1] if isinstance(entry, dict) else ""
            value = entry.get("value", [{}])[-1] if isinstance(entry, dict) else {}
            strings = value.get("string_value", []) if isinstance(value, dict) else []
            if not isinstance(key, str) or not key or not strings:
                raise ConfigError(f"config.pbtxt parameter {entry!r}; expected "
                                  '{ key: "..." value: { string_value: "..." } }')
            parameters[key] = strings[-1]
        return cls(scalar("name"), scalar("platform"), scalar("backend"), parameters)


def read_model_config(path: str | Path) -> ModelConfig:
    """:meth:`ModelConfig.from_text` of the file at ``path``.

    Raises:
        ConfigError: the file is missing or malformed.
    """
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"{source} does not exist; write the model repository with `anoncodec export`")
    try:
        return ModelConfig.from_text(source.read_text())
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
