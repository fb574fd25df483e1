"""The packet's entropy coder: a range coder driven by integer probability tables.

Numpy + ``constriction`` only, so the camera (no PyTorch) and the server (PyTorch)
run the very same code and a packet decodes bit-exactly on either side. The tables are
the integer CDFs CompressAI computes in ``EntropyBottleneck.update()`` /
``GaussianConditional.update()`` (``quantized_cdf``, ``cdf_length``, ``offset``), exported
once with the model. Because the coder only ever sees integers (symbols, table indexes
and 16-bit probability counts), its output does not depend on floating point.

Symbols outside a table's range are coded like CompressAI does: the table's last entry
is an escape symbol, and the escaped value follows in a bypass section (a count of
4-bit chunks, then the chunks), after all regular symbols.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anoncodec.errors import PacketError, PacketReason

__all__ = ["CategoricalCoder", "FactorizedTables", "quantize_factorized"]

_MAX_CHUNKS = 8  # escaped values are < 2**32: at most 8 nibbles


def _constriction():
    import constriction  # noqa: PLC0415 - keeps import of this module cheap

    return constriction


@dataclass
class CategoricalCoder:
    """Range coder over a family of categorical tables.

    Args:
        pmfs: per table, integer probability counts ``[L_t]`` (int32, > 0); the last entry
            of each table is the escape symbol.
        offsets: per table, the symbol value that maps to entry 0 (int32 ``[T]``).
    """

    pmfs: list[np.ndarray]
    offsets: np.ndarray
    _models: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.pmfs = [np.asarray(p, dtype=np.int64) for p in self.pmfs]
        if len(self.pmfs) != len(self.offsets):
            raise ValueError(f"{len(self.pmfs)} tables but {len(self.offsets)} offsets")
        if any(p.ndim != 1 or p.size < 2 or (p <= 0).any() for p in self.pmfs):
            raise ValueError("every pmf must be 1-D, have >= 2 entries and be > 0")
        self.max_values = np.array([p.size - 1 for p in self.pmfs], dtype=np.int64)

    @classmethod
    def from_cdfs(cls, cdfs: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> CategoricalCoder:
        """Build from CompressAI's ``quantized_cdf [T, Lmax]``, ``cdf_length [T]``, ``offset [T]``."""
        cdfs = np.asarray(cdfs, dtype=np.int64)
        pmfs = [np.diff(cdfs[t, : int(n)]) for t, n in enumerate(np.asarray(lengths))]
        # CompressAI guarantees >= 1 count per entry; guard anyway so no symbol is impossible.
        pmfs = [np.maximum(p, 1) for p in pmfs]
        return cls(pmfs=pmfs, offsets=np.asarray(offsets))

    @property
    def num_tables(self) -> int:
        return len(self.pmfs)

    def _model(self, t: int):
        if not self._models:
            model = _constriction().stream.model
            self._models = [model.Categorical(p.astype(np.float64), perfect=False) for p in self.pmfs]
        return self._models[t]

    def _check_indexes(self, indexes: np.ndarray) -> np.ndarray:
        idx = np.asarray(indexes).ravel().astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_tables):
            raise ValueError(f"table indexes must be in [0, {self.num_tables}), got {idx.min()}..{idx.max()}")
        return idx

    def encode(self, symbols: np.ndarray, indexes: np.ndarray) -> bytes:
        """Entropy-code integer ``symbols``, each with the table ``indexes`` names (same shape)."""
        cs = _constriction()
        flat = np.asarray(symbols).ravel().astype(np.int64)
        idx = self._check_indexes(indexes)
        if flat.shape != idx.shape:
            raise ValueError(f"symbols {flat.shape} and indexes {idx.shape} differ in size")
        order = np.argsort(idx, kind="stable")
        idx_sorted = idx[order]
        values = flat[order] - self.offsets[idx_sorted]
        max_values = self.max_values[idx_sorted]
        low, high = values < 0, values >= max_values
        escaped = np.where(low, -2 * values - 1, 2 * (values - max_values))[low | high]
        if escaped.size and escaped.max() >= 2**32:
            raise ValueError("a latent value is too large to code (|value| >= 2**31)")
        values = np.where(low | high, max_values, values).astype(np.int32)

        encoder = cs.stream.queue.RangeEncoder()
        counts = np.bincount(idx_sorted, minlength=self.num_tables)
        start = 0
        for t in np.nonzero(counts)[0]:
            stop = start + int(counts[t])
            encoder.encode(values[start:stop], self._model(int(t)))
            start = stop
        if escaped.size:
            chunks = np.zeros(escaped.size, dtype=np.int64)
            rest = escaped.copy()
            while (rest > 0).any():
                chunks += rest > 0
                rest >>= 4
            encoder.encode(chunks.astype(np.int32), cs.stream.model.Uniform(_MAX_CHUNKS + 1))
            nibbles = [(v >> (4 * j)) & 15 for v, n in zip(escaped, chunks) for j in range(int(n))]
            if nibbles:
                encoder.encode(np.array(nibbles, dtype=np.int32), cs.stream.model.Uniform(16))
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, indexes: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode`; returns int32 symbols shaped like ``indexes``.

        Raises:
            PacketError: when ``data`` cannot be a stream of this coder (wrong length,
                decoder failure, impossible escape counts).
        """
        cs = _constriction()
        shape = np.shape(indexes)
        idx = self._check_indexes(indexes)
        if len(data) % 4:
            raise PacketError(f"entropy-coded payload has {len(data)} bytes; expected a multiple of 4",
                              reason=PacketReason.PAYLOAD_LENGTH)
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        order = np.argsort(idx, kind="stable")
        idx_sorted = idx[order]
        counts = np.bincount(idx_sorted, minlength=self.num_tables)
        values = np.empty(idx.size, dtype=np.int64)
        try:
            decoder = cs.stream.queue.RangeDecoder(words)
            start = 0
            for t in np.nonzero(counts)[0]:
                stop = start + int(counts[t])
                values[start:stop] = decoder.decode(self._model(int(t)), stop - start)
                start = stop
            max_values = self.max_values[idx_sorted]
            esc = values >= max_values
            n_esc = int(esc.sum())
            if n_esc:
                chunks = decoder.decode(cs.stream.model.Uniform(_MAX_CHUNKS + 1), n_esc).astype(np.int64)
                total = int(chunks.sum())
                nibbles = (
                    decoder.decode(cs.stream.model.Uniform(16), total).astype(np.int64)
                    if total
                    else np.zeros(0, np.int64)
                )
                raw = np.zeros(n_esc, dtype=np.int64)
                pos = 0
                for i, n in enumerate(chunks):
                    for j in range(int(n)):
                        raw[i] |= nibbles[pos] << (4 * j)
                        pos += 1
                mv = max_values[esc]
                values[esc] = np.where(raw % 2 == 1, -(raw + 1) // 2, raw // 2 + mv)
        except PacketError:
            raise
        except Exception as exc:  # constriction raises plain errors on garbage input
            raise PacketError(f"entropy decoding failed: {exc}", reason=PacketReason.ENTROPY) from exc
        out = np.empty(idx.size, dtype=np.int64)
        out[order] = values + self.offsets[idx_sorted]
        if np.abs(out).max(initial=0) >= 2**31:
            raise PacketError("entropy decoding produced values out of the int32 range", reason=PacketReason.ENTROPY)
        return out.astype(np.int32).reshape(shape)


def quantize_factorized(y: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """Integer symbols of a factorized-prior latent: ``round(y - median_c)`` (half to even).

    Args:
        y: latent, float32 ``[C, h, w]`` or ``[1, C, h, w]``.
        medians: per-channel medians, float32 ``[C]``.
    """
    y = np.asarray(y, dtype=np.float32)
    med = np.asarray(medians, dtype=np.float32).reshape(-1, 1, 1)
    return np.rint(y - med).astype(np.int32)


@dataclass
class FactorizedTables:
    """Everything the camera needs to entropy-code a factorized-prior latent.

    Args:
        medians: per-channel medians of the ``EntropyBottleneck``, float32 ``[C]``.
        coder: one table per channel.
        model_id: 16-byte id of the weights these tables belong to.
    """

    medians: np.ndarray
    coder: CategoricalCoder
    model_id: bytes

    def channel_indexes(self, shape: tuple[int, int, int]) -> np.ndarray:
        """Table index (= channel) of every element of a ``[C, h, w]`` latent."""
        c, h, w = shape
        if c != self.medians.size:
            raise PacketError(f"latent has {c} channels; these tables have {self.medians.size}",
                              reason=PacketReason.LATENT_SHAPE)
        return np.broadcast_to(np.arange(c, dtype=np.int64).reshape(c, 1, 1), (c, h, w))

    def encode(self, y: np.ndarray) -> tuple[bytes, np.ndarray]:
        """Quantize and code a latent ``[C, h, w]``; returns ``(payload, y_hat)``."""
        y = np.asarray(y, dtype=np.float32).reshape(-1, *np.shape(y)[-2:])
        symbols = quantize_factorized(y, self.medians)
        payload = self.coder.encode(symbols, self.channel_indexes(symbols.shape))
        return payload, self.dequantize(symbols)

    def decode(self, payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        """Decode a payload into ``y_hat`` (float32 ``[C, h, w]``)."""
        return self.dequantize(self.coder.decode(payload, self.channel_indexes(shape)))

    def dequantize(self, symbols: np.ndarray) -> np.ndarray:
        return (symbols.astype(np.float32) + self.medians.reshape(-1, 1, 1).astype(np.float32))

    def save(self, path: str | Path) -> None:
        """Write the tables to an ``.npz`` file (exported next to the encoder ONNX)."""
        lengths = np.array([p.size for p in self.coder.pmfs], dtype=np.int64)
        buf = io.BytesIO()
        np.savez(
            buf,
            medians=self.medians.astype(np.float32),
            pmfs=np.concatenate(self.coder.pmfs).astype(np.int32),
            lengths=lengths,
            offsets=self.coder.offsets.astype(np.int32),
            model_id=np.frombuffer(self.model_id, dtype=np.uint8),
        )
        Path(path).write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> FactorizedTables:
        """Read tables written by :meth:`save`."""
        with np.load(path) as f:
            lengths = f["lengths"]
            splits = np.cumsum(lengths)[:-1]
            pmfs = np.split(f["pmfs"].astype(np.int64), splits)
            return cls(
                medians=f["medians"].astype(np.float32),
                coder=CategoricalCoder(pmfs=pmfs, offsets=f["offsets"]),
                model_id=f["model_id"].tobytes(),
            )
