import numpy as np
import pytest

from anoncodec.entropy_coder import CategoricalCoder, FactorizedTables, quantize_factorized
from anoncodec.errors import PacketError, PacketReason


def coder() -> CategoricalCoder:
    pmfs = [np.array([1000, 30000, 30000, 5000, 536]), np.array([20000, 20000, 25535, 1])]
    return CategoricalCoder(pmfs=pmfs, offsets=np.array([-2, 0]))


def test_round_trip_including_escapes():
    c = coder()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 2, size=(3, 7, 9))
    sym = rng.integers(-3, 3, size=idx.shape)
    sym.flat[:5] = [-100000, 70000, 3, -1, 2**30]  # far outside the tables
    data = c.encode(sym, idx)
    assert np.array_equal(c.decode(data, idx), sym)


def test_compresses_likely_symbols():
    c = coder()
    idx = np.zeros(10000, dtype=np.int64)
    sym = np.random.default_rng(1).choice([-1, 0], size=10000)
    assert len(c.encode(sym, idx)) * 8 < 1.2 * 10000  # ~1 bit/symbol, not 32


def test_decode_of_garbage_raises_packet_error_or_returns():
    c = coder()
    idx = np.zeros((4, 4), dtype=np.int64)
    with pytest.raises(PacketError):
        c.decode(b"abc", idx)
    for seed in range(50):
        data = np.random.default_rng(seed).integers(0, 256, size=8, dtype=np.uint8).tobytes()
        try:
            out = c.decode(data, idx)
            assert out.shape == idx.shape
        except PacketError:
            pass


def test_bad_indexes():
    with pytest.raises(ValueError):
        coder().encode(np.zeros(3), np.array([0, 1, 2]))


def test_factorized_tables_save_load(tmp_path):
    tables = FactorizedTables(medians=np.array([0.25, -1.5], np.float32), coder=coder(), model_id=b"m" * 16)
    tables.save(tmp_path / "t.npz")
    loaded = FactorizedTables.load(tmp_path / "t.npz")
    y = np.random.default_rng(2).normal(0, 2, size=(2, 5, 6)).astype(np.float32)
    payload, y_hat = tables.encode(y)
    assert loaded.model_id == b"m" * 16
    assert np.array_equal(loaded.decode(payload, y.shape), y_hat)
    assert np.array_equal(y_hat, quantize_factorized(y, tables.medians) + tables.medians.reshape(-1, 1, 1))


def test_quantize_is_half_to_even_like_torch():
    import torch

    y = np.array([[[0.5, 1.5, -0.5, 2.5, 0.49999997]]], np.float32)
    assert quantize_factorized(y, np.zeros(1, np.float32)).tolist() == torch.round(torch.from_numpy(y)).int().tolist()


def test_channel_mismatch():
    tables = FactorizedTables(medians=np.zeros(2, np.float32), coder=coder(), model_id=b"m" * 16)
    with pytest.raises(PacketError, match="channels"):
        tables.decode(b"", (3, 1, 1))


def test_rejections_carry_their_reason_code():
    with pytest.raises(PacketError) as caught:
        coder().decode(b"abc", np.zeros((4, 4), dtype=np.int64))
    assert caught.value.reason == PacketReason.PAYLOAD_LENGTH
    # almost every symbol escapes: garbage words soon break the range decoder
    escaping = CategoricalCoder(pmfs=[np.array([1, 60000])], offsets=np.array([0]))
    data = np.random.default_rng(74).integers(0, 256, size=32, dtype=np.uint8).tobytes()
    with pytest.raises(PacketError, match="entropy decoding failed") as caught:
        escaping.decode(data, np.zeros(16, dtype=np.int64))
    assert caught.value.reason == PacketReason.ENTROPY
    tables = FactorizedTables(medians=np.zeros(2, np.float32), coder=coder(), model_id=b"m" * 16)
    with pytest.raises(PacketError) as caught:
        tables.decode(b"", (3, 1, 1))
    assert caught.value.reason == PacketReason.LATENT_SHAPE
