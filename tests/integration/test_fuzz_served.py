"""Malformed requests against the real tritonserver: each gets an error, none hurts it.

Sends one 4096x4096 frame and a few hundred generated requests
(:mod:`anoncodec.qa.fuzz_requests`: mutated packets, wrong dtypes/ranks/channels,
zero-size, oversized and lying shapes, malformed BYTES framing, missing and unknown
inputs) to both ensembles of the session server. Every answer must be
``INVALID_ARGUMENT`` or, for a mutated packet that still decodes, a result that follows
the serving contract (docs/ARCHITECTURE.md); never ``INTERNAL``, never a request over its
deadline. A rejected packet's message carries the reason code of the failed check
(``[packet:crc]``). Every 25 cases the server must be ready and answer valid requests, and
the RSS of tritonserver and its python stubs must stay flat after the warm-up. The nightly
run (``fuzz/nightly.py``) does the same with more cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from anoncodec.errors import PacketReason

pytestmark = [pytest.mark.slow, pytest.mark.triton]

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")
pytest.importorskip("psutil", reason="psutil (extra `dev`) is not installed")

CASES, WARMUP = 300, 30
RSS_GROWTH_LIMIT_MIB = 64  # allocator noise is ~10 MiB here; a per-request leak of frames or latents is not


def test_malformed_requests_get_errors_and_the_server_stays_up_and_flat(server, exported):
    from anoncodec.qa.fuzz_packets import PacketMutator, PacketTarget
    from anoncodec.qa.fuzz_requests import ServedCase, TensorSpec, served_cases
    from anoncodec.qa.fuzz_server import fuzz_server

    target = PacketTarget.from_repository(exported / "repo")
    seeds = target.seed_packets()
    cases = served_cases(PacketMutator(seeds, target.codec, target.limits, seed=11), CASES + WARMUP,
                         target.limits, seed=11, huge_frame=(4096, 4096), largest_packet=target.largest_packet())
    good = [ServedCase("good-frame", "anonymize_frame",
                       (TensorSpec("FRAME", "UINT8", np.full((64, 64, 3), 128, np.uint8)),), "accept"),
            ServedCase("good-packet", "analyze_bitstream",
                       (TensorSpec("PACKET", "BYTES", np.array([seeds[2]], dtype=object)),), "accept")]
    report = fuzz_server(server.grpc_url, cases, good, pid=server.process.pid, timeout_s=60, check_every=25,
                         warmup=WARMUP)
    totals = report.totals()
    memory = report.memory
    print(f"served fuzz: {report.cases} cases in {report.elapsed_s:.1f} s: {dict(totals)}; slowest "
          f"{report.slowest_s:.2f} s ({report.slowest_kind}); RSS {memory['before_mib']:.0f} -> "
          f"{memory['after_mib']:.0f} MiB (peak {memory['peak_mib']:.0f}); reasons {dict(report.reasons)}")
    assert report.ok, report.failures[:5]
    assert report.cases + report.skipped == CASES and report.skipped == 0
    assert totals["rejected"] > CASES // 2 and totals["accepted"] > 0
    for kind in ("frame-dtype", "frame-rank", "frame-empty", "frame-oversize", "frame-shape-lie",
                 "packet-framing", "packet-truncated", "packet-bit-flip-crc", "packet-payload-garbage"):
        assert sum(report.outcomes[kind].values()) > 0, kind
    # rejected packets name the failed check in the error text ([packet:crc] ...), Triton's own
    # rejections (dtype, shape) have only their status
    assert set(report.reasons) <= PacketReason.codes() | {"INVALID_ARGUMENT"}, report.reasons
    assert len(set(report.reasons) & PacketReason.codes()) >= 3, report.reasons
    assert memory["after_mib"] - memory["before_mib"] < RSS_GROWTH_LIMIT_MIB, memory
    assert server.is_ready()
