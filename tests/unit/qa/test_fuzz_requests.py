"""Served-request fuzz cases, the report and the server's tagged reasons (no server, no torch)."""

from __future__ import annotations

import json

import pytest

from anoncodec.errors import InvalidRequestError, ModelMismatchError, PacketError, PacketReason, tag
from anoncodec.qa.fuzz_packets import PacketMutator, fuzz_decoder
from anoncodec.qa.fuzz_report import FuzzReport
from anoncodec.qa.fuzz_requests import served_cases
from anoncodec.qa.fuzz_server import served_reason


def test_served_cases_mix_packets_and_malformed_tensors(target, seeds):
    mutator = PacketMutator(seeds, target.codec, target.limits, seed=0)
    cases = served_cases(mutator, 300, target.limits, seed=0, huge_frame=(64, 64))
    assert len(cases) == 300 and cases[0].kind == "frame-huge"
    kinds = {c.kind for c in cases}
    for kind in ("frame-dtype", "frame-rank", "frame-empty", "frame-oversize", "frame-shape-lie",
                 "packet-framing", "packet-count", "frame-tiny-valid"):
        assert kind in kinds, kind
    assert sum(c.model == "analyze_bitstream" for c in cases) > 100
    assert {c.expect for c in cases if c.kind.startswith("frame-") and c.kind != "frame-tiny-valid"} == {"reject"}
    oversize = [c.inputs[0].array.shape for c in cases if c.kind == "frame-oversize"]
    assert all(h > 240 or w > 320 for h, w, _ in oversize)


def test_report_serializes_to_json(target, seeds):
    report = fuzz_decoder(target, PacketMutator(seeds, target.codec, target.limits).cases(20))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["cases"] == 20 and data["ok"] is True and isinstance(FuzzReport("x").totals(), dict)


@pytest.mark.parametrize("error", [PacketError("bad", reason=PacketReason.CRC), ModelMismatchError("other weights"),
                                   InvalidRequestError("too big", reason=PacketReason.FRAME_SIZE)])
def test_served_reason_reads_the_code_the_server_tags_its_message_with(error):
    # what python_model sends, wrapped the way Triton's ensemble scheduler passes it on
    message = f"in ensemble 'analyze_bitstream', entropy_decode: {tag(error)}{error}"
    assert served_reason(message) == error.reason


def test_an_untagged_rejection_keeps_its_grpc_status():
    assert served_reason("unexpected datatype TYPE_FP32 for input 'FRAME'") == "INVALID_ARGUMENT"
    assert served_reason("[packet] not a tag", "INVALID_ARGUMENT") == "INVALID_ARGUMENT"
