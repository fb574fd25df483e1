"""anoncodec.errors: the hierarchy, reason codes and the tag that carries them through text."""

from __future__ import annotations

import pickle

import pytest

from anoncodec import errors
from anoncodec.errors import (
    AnoncodecError,
    InvalidRequestError,
    ModelMismatchError,
    PacketError,
    PacketReason,
    ServerUnavailableError,
    parse_tag,
    tag,
)


@pytest.mark.parametrize("name", [n for n in errors.__all__ if n.endswith("Error")])
def test_every_error_keeps_its_builtin_base_its_message_and_its_reason_through_pickling(name):
    cls = getattr(errors, name)
    exc = cls("what was wrong", reason="truncated")
    assert str(exc) == "what was wrong" and exc.reason == "truncated"
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is cls and str(copy) == "what was wrong" and copy.reason == "truncated"


def test_reason_defaults():
    assert PacketError("x").reason is None and AnoncodecError("x").reason is None
    assert ModelMismatchError("x").reason == PacketReason.MODEL_ID
    assert isinstance(ServerUnavailableError("down"), ConnectionError)


def test_codes_are_plain_distinct_strings():
    codes = PacketReason.codes()
    assert len(codes) == 17 and all(type(c) is str for c in codes)
    assert {"truncated", "magic", "version", "crc", "length", "frame-size", "model-id"} <= codes


def test_tag_round_trips_through_a_message():
    exc = PacketError("packet truncated: 3 bytes", reason=PacketReason.TRUNCATED)
    assert tag(exc) == "[packet:truncated] "
    assert parse_tag(f"entropy_decode: {tag(exc)}{exc}") == ("packet", "truncated")
    assert tag(InvalidRequestError("big", reason=PacketReason.FRAME_SIZE)) == "[request:frame-size] "
    assert tag(PacketError("no code")) == "" and tag(ValueError("x")) == ""
    assert tag(AnoncodecError("no family", reason="crc")) == ""
    assert parse_tag("in ensemble 'x', unexpected shape [1,2]") is None
