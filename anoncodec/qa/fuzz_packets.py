"""Malformed packets: the generator, the server's packet path as a target, the in-process fuzz.

May import numpy and anoncodec's errors, packet, entropy_coder, edge (the camera encoder,
for seed packets) and serving (the stages); never torch or tritonclient::

    PacketTarget.seed_packets() --> PacketMutator --> PacketCase bytes --> fuzz_decoder:
                                                       decode_packet() in process

The mutations reach every layer of a packet: random bytes, truncations and extensions
(with and without a recomputed CRC32, so the parser gets past the checksum), bit flips,
boundary values in every header and stream-table field, garbage or flipped payloads under
a valid header (the range decoder's input), huge declared frames with a consistent latent
shape, other model ids, spliced packets. Malformed packets are built from the layout that
:mod:`anoncodec.packet` exposes, and rejections are sorted by the error's ``reason`` code.
"""

from __future__ import annotations

import json
import random
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anoncodec.entropy_coder import FactorizedTables
from anoncodec.errors import AnoncodecError, ExportError
from anoncodec.packet import (
    CRC_SIZE,
    HEADER_FIELDS,
    HEADER_SIZE,
    MAGIC,
    MAX_SIDE,
    MIN_PACKET_SIZE,
    STREAM_ENTRY_SIZE,
    STREAM_FIELDS,
    Packet,
    Stream,
    header_field,
    pack,
    seal,
    stream_field,
    unpack,
)
from anoncodec.qa.fuzz_report import ACCEPTED, FAILURE, REJECTED, FuzzReport
from anoncodec.serving.model_config import read_model_config
from anoncodec.serving.stages import CodecInfo, FrameLimits, decode_packet

__all__ = [
    "PacketCase",
    "PacketTarget",
    "PacketMutator",
    "raw_packet",
    "rejection_reason",
    "fuzz_decoder",
]

# the fields that get boundary values: every header field but the magic and the model id
# (their own mutations), and the first stream table entry
_MUTABLE_FIELDS = tuple(f for f in HEADER_FIELDS if f.name not in ("magic", "model_id")) + tuple(
    stream_field(0, f.name) for f in STREAM_FIELDS)
_MODEL_ID = header_field("model_id")
# the layout built by hand here is that of a frame on its own (version 1); sequence packets
# (version 2) are fuzzed by tests/unit/test_replenish.py
FRAME_VERSION = 1


def _prefix() -> bytes:
    """Magic and version of a valid packet: random bytes after them get past those two checks."""
    out = bytearray(header_field("architecture").offset)
    header_field("magic").pack_into(out, MAGIC)
    header_field("version").pack_into(out, FRAME_VERSION)
    return bytes(out)


_PREFIX = _prefix()


def raw_packet(height: int, width: int, streams: Sequence[tuple[int, int, int, bytes]], model_id: bytes,
               arch: int = 1, version: int = FRAME_VERSION, flags: int = 0) -> bytes:
    """A packet's bytes without :class:`~anoncodec.packet.Packet`'s validation (for absurd headers).

    Args:
        streams: ``(C, h, w, payload)`` per stream.
    """
    values = {"magic": MAGIC, "version": version, "architecture": arch, "flags": flags, "model_id": model_id,
              "height": height, "width": width, "streams": len(streams)}
    table = bytearray(HEADER_SIZE + len(streams) * STREAM_ENTRY_SIZE)
    for f in HEADER_FIELDS:
        f.pack_into(table, values[f.name])
    for i, (c, h, w, data) in enumerate(streams):
        entry = {"channels": c, "latent_h": h, "latent_w": w, "payload_length": len(data)}
        for f in STREAM_FIELDS:
            stream_field(i, f.name).pack_into(table, entry[f.name])
    return seal(bytes(table) + b"".join(data for *_, data in streams))


def rejection_reason(exc: AnoncodecError) -> str:
    """The rejection's ``reason`` code (``"crc"``, ``"entropy"``, ...; ``"other"`` without one)."""
    return getattr(exc, "reason", None) or "other"


@dataclass(frozen=True)
class PacketCase:
    """One generated packet: ``kind`` names the mutation, ``data`` the bytes."""

    kind: str
    data: bytes


@dataclass
class PacketTarget:
    """What the server's ``entropy_decode`` stage runs: tables, codec facts, frame limits.

    Args:
        tables: the codec's entropy tables.
        codec: model id, downsampling and latent channels.
        limits: largest frame the server accepts.
        encoder_onnx: the camera encoder, to make real seed packets (None: no seeds).
    """

    tables: FactorizedTables
    codec: CodecInfo
    limits: FrameLimits = field(default_factory=FrameLimits)
    encoder_onnx: Path | None = None

    @classmethod
    def from_repository(cls, repository: str | Path) -> PacketTarget:
        """Load everything from a model repository written by ``anoncodec export``.

        Raises:
            ExportError: the repository lacks ``entropy_decode/1/{tables.npz,codec.json}``.
        """
        version = Path(repository) / "entropy_decode" / "1"
        tables_path, codec_path = version / "tables.npz", version / "codec.json"
        if not (tables_path.is_file() and codec_path.is_file()):
            raise ExportError(f"{version} lacks tables.npz/codec.json; pass a model repository written by "
                              "`anoncodec export`")
        config = version.parent / "config.pbtxt"
        params = read_model_config(config).parameters if config.is_file() else {}
        default = FrameLimits()
        limits = FrameLimits(int(params.get("max_height", default.max_height)),
                             int(params.get("max_width", default.max_width)))
        encoder = Path(repository) / "encoder" / "1" / "model.onnx"
        return cls(FactorizedTables.load(tables_path), CodecInfo.from_dict(json.loads(codec_path.read_text())),
                   limits, encoder if encoder.is_file() else None)

    def decode(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The server's packet path: parse, check the model id and limits, entropy-decode."""
        return decode_packet(np.array([data], dtype=object), self.tables, self.codec, self.limits)

    def seed_packets(self, sizes: Sequence[tuple[int, int]] = ((1, 1), (17, 33), (64, 64), (96, 160)),
                     seed: int = 0) -> list[bytes]:
        """Valid packets to mutate: synthetic frames (noise, gradient, flat) of ``sizes``
        encoded with the camera encoder (random latents when there is no ``encoder_onnx``),
        plus one latent far from the medians (escape symbols in the payload)."""
        rng = np.random.default_rng(seed)
        f, c = self.codec.downsampling, self.codec.latent_channels
        medians = self.tables.medians.reshape(-1, 1, 1)

        def from_latent(h: int, w: int, y: np.ndarray) -> bytes:
            payload, _ = self.tables.encode(y)
            return pack(Packet(self.codec.model_id, "factorized", h, w, (Stream(y.shape, payload),)))

        encoder = None
        if self.encoder_onnx is not None:
            from anoncodec.edge.encoder import EdgeEncoder

            encoder = EdgeEncoder(self.encoder_onnx, self.encoder_onnx.parents[2] / "quantize" / "1" / "tables.npz")
        packets = []
        for i, (h, w) in enumerate(sizes):
            h, w = min(h, self.limits.max_height), min(w, self.limits.max_width)
            if encoder is None:
                y = (rng.normal(0, 3, (c, -(-h // f), -(-w // f))) + medians).astype(np.float32)
                packets.append(from_latent(h, w, y))
                continue
            styles = (rng.integers(0, 256, (h, w, 3)),
                      np.broadcast_to(np.linspace(0, 255, w)[None, :, None], (h, w, 3)),
                      np.full((h, w, 3), 255 * (i % 2)))
            packets.append(encoder.encode_bytes(np.ascontiguousarray(styles[i % 3], dtype=np.uint8)))
        packets.append(from_latent(f, f, (rng.normal(0, 40, (c, 1, 1)) + medians).astype(np.float32)))
        return packets

    def largest_packet(self, seed: int = 0) -> bytes:
        """A valid packet of the largest frame the server accepts (random latent near the medians)."""
        h, w, f = self.limits.max_height, self.limits.max_width, self.codec.downsampling
        shape = (self.codec.latent_channels, -(-h // f), -(-w // f))
        y = np.random.default_rng(seed).normal(0, 2, shape) + self.tables.medians.reshape(-1, 1, 1)
        payload, _ = self.tables.encode(y.astype(np.float32))
        return pack(Packet(self.codec.model_id, "factorized", h, w, (Stream(shape, payload),)))


class PacketMutator:
    """Seeded generator of malformed (and a few valid) packets.

    Args:
        seeds: valid packets of the served codec (:meth:`PacketTarget.seed_packets`).
        codec: the served codec (huge-frame cases declare consistent latent shapes).
        limits: the server's frame limits (boundary cases at and above them).
        seed: random seed; the same seed gives the same cases.
    """

    def __init__(self, seeds: Sequence[bytes], codec: CodecInfo, limits: FrameLimits = FrameLimits(),
                 seed: int = 0) -> None:
        if not seeds:
            raise ValueError("PacketMutator needs at least one valid seed packet")
        self.seeds = [bytes(s) for s in seeds]
        self.parsed = [unpack(s) for s in self.seeds]
        self.codec, self.limits = codec, limits
        self.rng = random.Random(seed)
        self.kinds: dict[str, Callable[[], bytes]] = {
            "valid": self._valid, "random-bytes": self._random_bytes, "truncated": self._truncated,
            "extended": self._extended, "bit-flip": self._bit_flip, "bit-flip-crc": self._bit_flip_crc,
            "header-field": self._header_field, "payload-garbage": self._payload_garbage,
            "payload-flip": self._payload_flip, "huge-frame": self._huge_frame, "foreign-model": self._foreign,
            "splice": self._splice, "extra-streams": self._extra_streams,
        }
        # valid seeds are a sanity check, not fuzz: keep them rare
        self.weights = [0.02 if k == "valid" else 1.0 for k in self.kinds]

    def _seed(self) -> bytes:
        return self.rng.choice(self.seeds)

    def _bytes(self, n: int) -> bytes:
        return self.rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""

    def _valid(self) -> bytes:
        return self._seed()

    def _random_bytes(self) -> bytes:
        n = self.rng.choice([0, 1, 3, 4, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + STREAM_ENTRY_SIZE - 1,
                             MIN_PACKET_SIZE, MIN_PACKET_SIZE + 1, self.rng.randint(0, 4096)])
        data = self._bytes(n)
        if self.rng.random() < 0.5:  # get past the magic and version checks
            data = _PREFIX + data
            if self.rng.random() < 0.5:
                data = seal(data)
        return data

    def _truncated(self) -> bytes:
        data = self._seed()
        if self.rng.random() < 0.5:
            return data[: self.rng.randrange(len(data))]
        body = data[:-CRC_SIZE]
        return seal(body[: self.rng.randrange(len(body))])

    def _extended(self) -> bytes:
        data, extra = self._seed(), self._bytes(self.rng.randint(1, 64))
        return data + extra if self.rng.random() < 0.5 else seal(data[:-CRC_SIZE] + extra)

    def _flip(self, data: bytes, start: int, stop: int) -> bytes:
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            out[self.rng.randrange(start, stop)] ^= 1 << self.rng.randrange(8)
        return bytes(out)

    def _bit_flip(self) -> bytes:
        data = self._seed()
        return self._flip(data, 0, len(data))

    def _bit_flip_crc(self) -> bytes:
        body = self._seed()[:-CRC_SIZE]
        return seal(self._flip(body, 0, len(body)))

    def _header_field(self) -> bytes:
        body = bytearray(self._seed()[:-CRC_SIZE])
        f = self.rng.choice(_MUTABLE_FIELDS)
        top = f.max_value
        values = [0, 1, 2, 3, top - 1, top, self.rng.randint(0, top)]
        if f.name in ("height", "width"):
            side = self.limits.max_height if f.name == "height" else self.limits.max_width
            values += [side, side + 1, MAX_SIDE, MAX_SIDE + 1]
        f.pack_into(body, self.rng.choice(values))
        return seal(body)

    def _payload_garbage(self) -> bytes:
        p = self.rng.choice(self.parsed)
        (s,) = p.streams[:1]
        n = self.rng.choice([0, 1, 2, 3, 4, 8, len(s.data), self.rng.randint(0, 2 * len(s.data) + 8)])
        return raw_packet(p.height, p.width, [(*s.shape, self._bytes(n))], p.model_id)

    def _payload_flip(self) -> bytes:
        p = self.rng.choice(self.parsed)
        s = p.streams[0]
        data = self._flip(s.data, 0, len(s.data)) if s.data else b"\x00"
        return raw_packet(p.height, p.width, [(*s.shape, data)], p.model_id)

    def _huge_frame(self) -> bytes:
        f, c = self.codec.downsampling, self.codec.latent_channels
        h = self.rng.choice([self.limits.max_height, self.limits.max_height + 1, MAX_SIDE, MAX_SIDE + 1,
                             self.rng.randint(1, MAX_SIDE)])
        w = self.rng.choice([self.limits.max_width, self.limits.max_width + 1, MAX_SIDE,
                             self.rng.randint(1, MAX_SIDE)])
        lh, lw = min(-(-h // f), 0xFFFF), min(-(-w // f), 0xFFFF)
        payload = self._bytes(4 * self.rng.randint(0, 16))
        return raw_packet(h, w, [(min(c, 0xFFFF), lh, lw, payload)], self.codec.model_id)

    def _foreign(self) -> bytes:
        body = bytearray(self._seed()[:-CRC_SIZE])
        _MODEL_ID.pack_into(body, self._bytes(_MODEL_ID.size))
        return seal(body)

    def _splice(self) -> bytes:
        a, b = self.rng.choice(self.parsed), self.rng.choice(self.parsed)
        return raw_packet(a.height, a.width, [(*a.streams[0].shape, b.streams[0].data)], a.model_id)

    def _extra_streams(self) -> bytes:
        p = self.rng.choice(self.parsed)
        s = p.streams[0]
        n = self.rng.randint(2, 5)
        return raw_packet(p.height, p.width, [(*s.shape, s.data)] * n, p.model_id, arch=self.rng.choice([1, 2]))

    def case(self) -> PacketCase:
        """One random case."""
        kind = self.rng.choices(list(self.kinds), self.weights)[0]
        return PacketCase(kind, self.kinds[kind]())

    def cases(self, n: int) -> Iterator[PacketCase]:
        """``n`` random cases."""
        for _ in range(n):
            yield self.case()


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def fuzz_decoder(target: PacketTarget, cases: Iterable[PacketCase], time_limit_s: float = 5.0) -> FuzzReport:
    """Run packet cases through the server's packet path in this process.

    Checks per case: only :class:`~anoncodec.errors.AnoncodecError` may escape; an
    accepted packet gives float32 ``[1, C, h, w]`` and the declared frame size, and
    re-packing what :func:`~anoncodec.packet.unpack` read gives the same bytes; a
    ``valid`` seed is accepted; no case takes longer than ``time_limit_s``.
    """
    report = FuzzReport("decoder")
    report.memory["max_rss_before_mib"] = round(_max_rss_mib(), 1)
    start = time.perf_counter()
    for case in cases:
        t0 = time.perf_counter()
        outcome, why = ACCEPTED, ""
        try:
            y_hat, size = target.decode(case.data)
            if y_hat.dtype != np.float32 or y_hat.ndim != 4 or y_hat.shape[:2] != (1, target.codec.latent_channels):
                outcome, why = FAILURE, f"accepted with y_hat {y_hat.dtype} {list(y_hat.shape)}"
            elif size.dtype != np.int64 or size.shape != (2,):
                outcome, why = FAILURE, f"accepted with size {size.dtype} {list(size.shape)}"
            elif pack(unpack(case.data)) != case.data:
                outcome, why = FAILURE, "unpack accepted bytes that pack() does not reproduce"
        except AnoncodecError as exc:
            outcome, why = REJECTED, rejection_reason(exc)
            if case.kind == "valid":
                outcome, why = FAILURE, f"a valid seed packet was rejected: {exc}"
        except Exception as exc:  # the bug a fuzzer looks for
            outcome, why = FAILURE, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        if seconds > time_limit_s and outcome != FAILURE:
            outcome, why = FAILURE, f"took {seconds:.2f} s (limit {time_limit_s} s)"
        report.record(case.kind, outcome, seconds, why, case.data)
    report.elapsed_s = time.perf_counter() - start
    report.memory["max_rss_after_mib"] = round(_max_rss_mib(), 1)
    return report
