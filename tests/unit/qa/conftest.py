"""A small packet target (entropy tables, codec info, frame limits) shared by the fuzz tests."""

from __future__ import annotations

import numpy as np
import pytest

from anoncodec.entropy_coder import CategoricalCoder, FactorizedTables
from anoncodec.qa.fuzz_packets import PacketTarget
from anoncodec.serving.stages import CodecInfo, FrameLimits

C, FACTOR = 6, 16
MODEL_ID = bytes(range(16))


@pytest.fixture(scope="module")
def target() -> PacketTarget:
    rng = np.random.default_rng(0)
    pmfs = [np.concatenate([rng.integers(1, 50, 11), [1]]) for _ in range(C)]  # last entry: escape
    tables = FactorizedTables(medians=rng.normal(0, 0.5, C).astype(np.float32),
                              coder=CategoricalCoder(pmfs=pmfs, offsets=np.full(C, -5)), model_id=MODEL_ID)
    return PacketTarget(tables, CodecInfo(MODEL_ID, FACTOR, C), FrameLimits(240, 320))


@pytest.fixture(scope="module")
def seeds(target) -> list[bytes]:
    return target.seed_packets(sizes=((1, 1), (40, 52), (64, 64), (240, 320)))
