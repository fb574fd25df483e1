"""Fuzzing the packet parser and the entropy decoder in process (no server, no torch).

A few hundred generated cases of :mod:`anoncodec.qa.fuzz_packets` (the nightly script
runs 10,000+), plus hypothesis properties aimed at the layers random bytes rarely reach:
a valid header and CRC over a garbage payload (the range decoder) and boundary values in
every header field. Raw packets are built from :mod:`anoncodec.packet`'s layout.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from anoncodec.errors import AnoncodecError, InvalidRequestError, PacketError, PacketReason
from anoncodec.packet import CRC_SIZE, HEADER_FIELDS, STREAM_FIELDS, header_field, seal, stream_field, unpack
from anoncodec.qa.fuzz_packets import (
    PacketCase,
    PacketMutator,
    PacketTarget,
    fuzz_decoder,
    raw_packet,
    rejection_reason,
)


def test_seeds_are_valid_packets_of_the_target(target, seeds):
    for data in seeds:
        y_hat, size = target.decode(data)
        packet = unpack(data)
        assert tuple(size) == (packet.height, packet.width) and y_hat.shape[:2] == (1, target.codec.latent_channels)


def test_600_mutated_packets_only_ever_raise_anoncodec_errors_and_reach_every_layer(target, seeds):
    report = fuzz_decoder(target, PacketMutator(seeds, target.codec, target.limits, seed=0).cases(600))
    assert report.ok, report.failures[:3]
    assert report.cases == 600
    totals = report.totals()
    assert totals["accepted"] > 0 and totals["rejected"] > 0
    # the mutations get past each check in turn, down to the frame limits and the model id
    for why in ("magic", "crc", "truncated", "length", "streams", "model-id", "frame-size", "latent-shape",
                "payload-length"):
        assert report.reasons[why] > 0, (why, report.reasons)
    assert report.outcomes["valid"]["accepted"] == sum(report.outcomes["valid"].values())
    print(f"decoder fuzz: {dict(totals)} in {report.elapsed_s:.2f} s; reasons {dict(report.reasons)}")


def test_the_same_seed_gives_the_same_cases(target, seeds):
    a = [c.data for c in PacketMutator(seeds, target.codec, target.limits, seed=3).cases(50)]
    b = [c.data for c in PacketMutator(seeds, target.codec, target.limits, seed=3).cases(50)]
    assert a == b and len(set(a)) > 40


def test_a_crash_a_wrong_acceptance_and_a_rejected_seed_are_failures(target, seeds):
    class Broken(PacketTarget):
        def decode(self, data):
            if data == seeds[0]:
                raise ValueError("bug")  # a plain exception escaped: a crash
            if data == seeds[1]:
                return np.zeros((1, self.codec.latent_channels, 1, 1), np.float64), np.zeros(2, np.int64)  # dtype
            return super().decode(data)

    broken = Broken(target.tables, target.codec, target.limits)
    foreign = bytearray(seeds[2][:-CRC_SIZE])
    foreign[header_field("model_id").offset] ^= 1
    foreign = seal(foreign)
    report = fuzz_decoder(broken, [PacketCase("valid", seeds[0]), PacketCase("valid", seeds[1]),
                                   PacketCase("valid", foreign), PacketCase("valid", seeds[3])])
    assert report.failure_count == 3 and not report.ok
    assert "ValueError: bug" in report.failures[0]["detail"]
    assert "float64" in report.failures[1]["detail"]
    assert "valid seed packet was rejected" in report.failures[2]["detail"]
    assert report.outcomes["valid"]["accepted"] == 1


def _with_payload(seed: bytes, payload: bytes) -> bytes:
    packet = unpack(seed)
    return raw_packet(packet.height, packet.width, [(*packet.streams[0].shape, payload)], packet.model_id)


def test_with_payload_rebuilds_a_seed_byte_for_byte(seeds):
    for seed in seeds:
        assert _with_payload(seed, unpack(seed).streams[0].data) == seed


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, 4), payload=st.binary(max_size=600))
def test_any_payload_under_a_valid_header_decodes_or_raises_packet_error(target, seeds, which, payload):
    try:
        y_hat, _ = target.decode(_with_payload(seeds[which], payload))
    except AnoncodecError:
        return
    assert y_hat.dtype == np.float32 and np.isfinite(y_hat).all()


# every integer field of the header and of the first stream table entry
_FIELDS = [f for f in HEADER_FIELDS if f.name not in ("magic", "model_id")] + [
    stream_field(0, f.name) for f in STREAM_FIELDS]


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, 4), field=st.sampled_from(_FIELDS), value=st.integers(0, 2**32 - 1))
def test_any_header_value_with_a_valid_crc_is_handled(target, seeds, which, field, value):
    body = bytearray(seeds[which][:-CRC_SIZE])
    field.pack_into(body, value % (field.max_value + 1))
    data = seal(body)
    try:
        target.decode(data)
    except AnoncodecError:
        pass


def test_rejections_are_sorted_by_the_error_reason_code_not_its_message():
    assert rejection_reason(PacketError("says nothing about checksums", reason=PacketReason.CRC)) == "crc"
    assert rejection_reason(InvalidRequestError("x", reason=PacketReason.FRAME_SIZE)) == "frame-size"
    assert rejection_reason(PacketError("packet CRC32 mismatch")) == "other"  # no code: no guessing
    assert rejection_reason(AnoncodecError("something new")) == "other"


def test_every_decoder_rejection_carries_a_known_reason_code(target, seeds):
    report = fuzz_decoder(target, PacketMutator(seeds, target.codec, target.limits, seed=1).cases(300))
    assert report.ok and report.reasons
    assert set(report.reasons) <= PacketReason.codes(), report.reasons
