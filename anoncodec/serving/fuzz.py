"""Fuzzing: malformed packets and requests against the parser, the entropy decoder and the
served ensembles.

May import numpy and anoncodec's errors, packet, entropy_coder, edge and serving stages;
``tritonclient`` (served fuzz) and ``psutil`` (server memory) lazily; never torch.

Two targets, one case generator::

    PacketMutator(seed packets) --> PacketCase bytes --> fuzz_decoder: decode_packet() in process
                                                    \\-> served_cases --> fuzz_server: analyze_bitstream
    frame/tensor mutations ----------------------------> served_cases --> fuzz_server: anonymize_frame

The mutations reach every layer of a packet: random bytes, truncations and extensions
(with and without a recomputed CRC32, so the parser gets past the checksum), bit flips,
boundary values in every header field, garbage or flipped payloads under a valid header
(the range decoder's input), huge declared frames with a consistent latent shape, other
model ids, spliced packets. Served requests add wrong dtypes, ranks and channel counts,
zero-size and oversized frames, shapes that lie about the data, malformed ``BYTES``
framing, missing and unknown inputs.

Every case must end in one of two outcomes: *accepted* (a well-formed result) or
*rejected* with :class:`~anoncodec.errors.AnoncodecError` in process, ``INVALID_ARGUMENT``
over gRPC. Anything else is a failure: another exception, another gRPC status
(``INTERNAL``, ``UNAVAILABLE``), a request over its deadline, a server that is no longer
ready, or a valid seed that is not accepted.
"""

from __future__ import annotations

import json
import logging
import random
import re
import resource
import struct
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.entropy_coder import FactorizedTables
from anoncodec.errors import AnoncodecError, ExportError, require
from anoncodec.packet import MAGIC, MAX_SIDE, VERSION, pack, unpack
from anoncodec.serving.stages import CodecInfo, FrameLimits, decode_packet

__all__ = [
    "PacketCase",
    "PacketTarget",
    "PacketMutator",
    "ServedCase",
    "TensorSpec",
    "FuzzReport",
    "fuzz_decoder",
    "served_cases",
    "fuzz_server",
    "process_tree_rss",
]

logger = logging.getLogger(__name__)

# Packet layout (anoncodec/packet.py): header 33 bytes, 10 per stream, CRC32 at the end.
_HEADER = struct.Struct("<4sBBH16sIIB")
_STREAM = struct.Struct("<HHHI")
# header/stream-table fields: (name, offset, struct format) for boundary-value mutations
_FIELDS = (("version", 4, "<B"), ("architecture", 5, "<B"), ("flags", 6, "<H"), ("height", 24, "<I"),
           ("width", 28, "<I"), ("streams", 32, "<B"), ("channels", 33, "<H"), ("latent_h", 35, "<H"),
           ("latent_w", 37, "<H"), ("payload_length", 39, "<I"))
# rejection message -> short reason (first match wins); tests use them to check depth
_REASONS = (("length mismatch", "length"), ("magic", "magic"), ("version", "version"), ("CRC", "crc"),
            ("truncated", "truncated"), ("architecture", "architecture"), ("flags", "flags"),
            ("streams", "streams"), ("absurd", "latent-shape"), ("latent shape", "latent-shape"),
            ("encoded by model", "model-id"), ("pixels (HxW)", "frame-size"), ("image height", "frame-size"),
            ("image width", "frame-size"), ("multiple of 4", "payload-length"), ("entropy decoding", "entropy"),
            ("int32 range", "entropy"), ("stream(s)", "streams"))

ACCEPTED, REJECTED, FAILURE = "accepted", "rejected", "failure"


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def _raw_packet(height: int, width: int, streams: Sequence[tuple[int, int, int, bytes]], model_id: bytes,
                arch: int = 1, version: int = VERSION, flags: int = 0) -> bytes:
    """A packet's bytes without :class:`~anoncodec.packet.Packet`'s validation (for absurd headers)."""
    parts = [_HEADER.pack(MAGIC, version, arch, flags, model_id, height, width, len(streams))]
    parts += [_STREAM.pack(c, h, w, len(data)) for c, h, w, data in streams]
    parts += [data for *_, data in streams]
    return _recrc(b"".join(parts))


def reason(message: str) -> str:
    """Short class of a rejection message (``"crc"``, ``"entropy"``, ...; ``"other"``)."""
    for needle, tag in _REASONS:
        if needle in message:
            return tag
    return "other"


@dataclass(frozen=True)
class PacketCase:
    """One generated packet: ``kind`` names the mutation, ``data`` the bytes."""

    kind: str
    data: bytes


def _stage_parameters(config: Path) -> dict[str, str]:
    text = config.read_text() if config.is_file() else ""
    return dict(re.findall(r'key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"', text))


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
    def from_repository(cls, repository: str | Path) -> "PacketTarget":
        """Load everything from a model repository written by ``anoncodec export``.

        Raises:
            ExportError: the repository lacks ``entropy_decode/1/{tables.npz,codec.json}``.
        """
        version = Path(repository) / "entropy_decode" / "1"
        tables_path, codec_path = version / "tables.npz", version / "codec.json"
        if not (tables_path.is_file() and codec_path.is_file()):
            raise ExportError(f"{version} lacks tables.npz/codec.json; pass a model repository written by "
                              "`anoncodec export`")
        params = _stage_parameters(version.parent / "config.pbtxt")
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
        from anoncodec.packet import Packet, Stream

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
        from anoncodec.packet import Packet, Stream

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
        n = self.rng.choice([0, 1, 3, 4, 32, 33, 42, 47, 48, self.rng.randint(0, 4096)])
        data = self._bytes(n)
        if self.rng.random() < 0.5:  # get past the magic and version checks
            data = MAGIC + bytes([VERSION]) + data
            if self.rng.random() < 0.5:
                data = _recrc(data)
        return data

    def _truncated(self) -> bytes:
        data = self._seed()
        if self.rng.random() < 0.5:
            return data[: self.rng.randrange(len(data))]
        body = data[:-4]
        return _recrc(body[: self.rng.randrange(len(body))])

    def _extended(self) -> bytes:
        data, extra = self._seed(), self._bytes(self.rng.randint(1, 64))
        return data + extra if self.rng.random() < 0.5 else _recrc(data[:-4] + extra)

    def _flip(self, data: bytes, start: int, stop: int) -> bytes:
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            out[self.rng.randrange(start, stop)] ^= 1 << self.rng.randrange(8)
        return bytes(out)

    def _bit_flip(self) -> bytes:
        data = self._seed()
        return self._flip(data, 0, len(data))

    def _bit_flip_crc(self) -> bytes:
        body = self._seed()[:-4]
        return _recrc(self._flip(body, 0, len(body)))

    def _header_field(self) -> bytes:
        body = bytearray(self._seed()[:-4])
        name, offset, fmt = self.rng.choice(_FIELDS)
        top = (1 << (8 * struct.calcsize(fmt))) - 1
        values = [0, 1, 2, 3, top - 1, top, self.rng.randint(0, top)]
        if name in ("height", "width"):
            side = self.limits.max_height if name == "height" else self.limits.max_width
            values += [side, side + 1, MAX_SIDE, MAX_SIDE + 1]
        struct.pack_into(fmt, body, offset, self.rng.choice(values))
        return _recrc(bytes(body))

    def _payload_garbage(self) -> bytes:
        p = self.rng.choice(self.parsed)
        (s,) = p.streams[:1]
        n = self.rng.choice([0, 1, 2, 3, 4, 8, len(s.data), self.rng.randint(0, 2 * len(s.data) + 8)])
        return _raw_packet(p.height, p.width, [(*s.shape, self._bytes(n))], p.model_id)

    def _payload_flip(self) -> bytes:
        p = self.rng.choice(self.parsed)
        s = p.streams[0]
        data = self._flip(s.data, 0, len(s.data)) if s.data else b"\x00"
        return _raw_packet(p.height, p.width, [(*s.shape, data)], p.model_id)

    def _huge_frame(self) -> bytes:
        f, c = self.codec.downsampling, self.codec.latent_channels
        h = self.rng.choice([self.limits.max_height, self.limits.max_height + 1, MAX_SIDE, MAX_SIDE + 1,
                             self.rng.randint(1, MAX_SIDE)])
        w = self.rng.choice([self.limits.max_width, self.limits.max_width + 1, MAX_SIDE,
                             self.rng.randint(1, MAX_SIDE)])
        lh, lw = min(-(-h // f), 0xFFFF), min(-(-w // f), 0xFFFF)
        payload = self._bytes(4 * self.rng.randint(0, 16))
        return _raw_packet(h, w, [(min(c, 0xFFFF), lh, lw, payload)], self.codec.model_id)

    def _foreign(self) -> bytes:
        body = bytearray(self._seed()[:-4])
        body[8:24] = self._bytes(16)
        return _recrc(bytes(body))

    def _splice(self) -> bytes:
        a, b = self.rng.choice(self.parsed), self.rng.choice(self.parsed)
        return _raw_packet(a.height, a.width, [(*a.streams[0].shape, b.streams[0].data)], a.model_id)

    def _extra_streams(self) -> bytes:
        p = self.rng.choice(self.parsed)
        s = p.streams[0]
        n = self.rng.randint(2, 5)
        return _raw_packet(p.height, p.width, [(*s.shape, s.data)] * n, p.model_id, arch=self.rng.choice([1, 2]))

    def case(self) -> PacketCase:
        """One random case."""
        kind = self.rng.choices(list(self.kinds), self.weights)[0]
        return PacketCase(kind, self.kinds[kind]())

    def cases(self, n: int) -> Iterator[PacketCase]:
        """``n`` random cases."""
        for _ in range(n):
            yield self.case()


@dataclass
class FuzzReport:
    """What a fuzz run found.

    Attributes:
        target: ``"decoder"`` (in process) or ``"server"``.
        cases: cases run (warm-up excluded).
        outcomes: per case kind, counts of ``accepted``/``rejected``/``failure``.
        reasons: counts of rejection reasons (:func:`reason`; gRPC status for the server).
        failures: up to 50 failures: kind, detail, the first bytes of the input (hex).
        skipped: cases the client library refused to build (not sent).
        seconds: per case kind, total seconds.
        elapsed_s: wall time; slowest_s: slowest single case.
        memory: RSS samples in MiB (``before``/``after`` and the peak), see the target.
    """

    target: str
    cases: int = 0
    outcomes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    reasons: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)
    failure_count: int = 0
    skipped: int = 0
    seconds: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0
    slowest_s: float = 0.0
    slowest_kind: str | None = None
    memory: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure_count == 0

    def record(self, kind: str, outcome: str, seconds: float, why: str = "", data: bytes = b"") -> None:
        self.cases += 1
        self.outcomes[kind][outcome] += 1
        self.seconds[kind] += seconds
        if seconds > self.slowest_s:
            self.slowest_s, self.slowest_kind = seconds, kind
        if outcome == REJECTED:
            self.reasons[why] += 1
        elif outcome == FAILURE:
            self.failure_count += 1
            if len(self.failures) < 50:
                self.failures.append({"kind": kind, "detail": why[:2000], "input_hex": data[:64].hex(),
                                      "input_bytes": len(data)})
            logger.error("fuzz %s: %s failed: %s", self.target, kind, why[:300])

    def totals(self) -> Counter:
        total: Counter = Counter()
        for counts in self.outcomes.values():
            total.update(counts)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "cases": self.cases, "ok": self.ok, "totals": dict(self.totals()),
                "outcomes": {k: dict(v) for k, v in sorted(self.outcomes.items())},
                "reasons": dict(self.reasons.most_common()), "failure_count": self.failure_count,
                "skipped": self.skipped, "seconds_by_kind": {k: round(v, 3) for k, v in self.seconds.most_common()},
                "failures": self.failures, "elapsed_s": round(self.elapsed_s, 3),
                "slowest_s": round(self.slowest_s, 4), "slowest_kind": self.slowest_kind, "memory": self.memory}


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
            outcome, why = REJECTED, reason(str(exc))
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


# -- served ensembles ------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One request input.

    Attributes:
        name: input name (``FRAME``, ``PACKET`` or a wrong one).
        datatype: Triton datatype sent (``UINT8``, ``BYTES``, ...).
        array: the data.
        shape: declared shape when it should differ from ``array.shape`` (a lie).
        raw: wire bytes that replace the serialized ``array`` (malformed ``BYTES`` framing).
    """

    name: str
    datatype: str
    array: np.ndarray
    shape: tuple[int, ...] | None = None
    raw: bytes | None = None


@dataclass(frozen=True)
class ServedCase:
    """One request: ``kind``, the ensemble, its inputs and what must happen.

    Attributes:
        expect: ``"reject"`` (``INVALID_ARGUMENT``), ``"accept"`` (a well-formed answer) or
            ``"either"`` (a mutated packet may still decode).
    """

    kind: str
    model: str
    inputs: tuple[TensorSpec, ...]
    expect: str = "reject"

    def head(self, n: int = 64) -> bytes:
        """The first ``n`` bytes of the first input (for failure reports)."""
        if not self.inputs:
            return b""
        t = self.inputs[0]
        if t.raw is not None:
            return t.raw[:n]
        if t.array.dtype == object:
            return b"".join(bytes(x) for x in t.array.reshape(-1))[:n]
        return t.array.tobytes()[:n]


_NP_DATATYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT8": np.int8,
                 "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "UINT16": np.uint16,
                 "UINT32": np.uint32, "BOOL": np.bool_}


def _frame_tensor(array: np.ndarray, datatype: str = "UINT8", **kw) -> TensorSpec:
    return TensorSpec("FRAME", datatype, array, **kw)


def _packet_tensor(data: bytes | Sequence[bytes], shape: tuple[int, ...] | None = None, **kw) -> TensorSpec:
    items = [data] if isinstance(data, (bytes, bytearray)) else list(data)
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return TensorSpec("PACKET", "BYTES", array.reshape(shape) if shape else array, **kw)


def _frame_cases(rng: np.random.Generator, limits: FrameLimits) -> dict[str, Callable[[], ServedCase]]:
    def small() -> tuple[int, int]:
        return int(rng.integers(1, 48)), int(rng.integers(1, 48))

    def pixels(*shape: int) -> np.ndarray:
        return rng.integers(0, 256, shape, dtype=np.uint8)

    def case(kind: str, *tensors: TensorSpec, expect: str = "reject") -> ServedCase:
        return ServedCase(kind, "anonymize_frame", tensors, expect)

    def dtype() -> ServedCase:
        h, w = small()
        name = str(rng.choice(list(_NP_DATATYPES)))
        return case("frame-dtype", _frame_tensor(pixels(h, w, 3).astype(_NP_DATATYPES[name]), name))

    def rank() -> ServedCase:
        h, w = small()
        shape = [(h, w), (1, h, w, 3), (h, w, 3, 1), (h * w * 3,)][int(rng.integers(4))]
        return case("frame-rank", _frame_tensor(pixels(*shape)))

    def channels() -> ServedCase:
        h, w = small()
        return case("frame-channels", _frame_tensor(pixels(h, w, int(rng.choice([0, 1, 2, 4, 5])))))

    def empty() -> ServedCase:
        h, w = small()
        shape = [(0, w, 3), (h, 0, 3), (0, 0, 3)][int(rng.integers(3))]
        return case("frame-empty", _frame_tensor(np.zeros(shape, np.uint8)))

    def oversize() -> ServedCase:
        h, w = small()
        shape = [(limits.max_height + 1, w, 3), (h, limits.max_width + 1, 3),
                 (limits.max_height + 1, limits.max_width + 1, 3)][int(rng.integers(3))]
        return case("frame-oversize", _frame_tensor(np.zeros(shape, np.uint8)))

    def shape_lie() -> ServedCase:
        h, w = small()
        lie = [(100_000, 100_000, 3), (h, w, 300), (h + 1, w, 3), (-1, w, 3), (0, w, 3),
               (2**31, 2**31, 3)][int(rng.integers(6))]
        return case("frame-shape-lie", _frame_tensor(pixels(h, w, 3), shape=lie))

    def as_bytes() -> ServedCase:
        return case("frame-bytes", TensorSpec("FRAME", "BYTES", np.array([b"\x00" * 12], dtype=object)))

    def wrong_name() -> ServedCase:
        h, w = small()
        return case("frame-wrong-name", TensorSpec(str(rng.choice(["frame", "PACKET", "IMAGE", ""])), "UINT8",
                                                   pixels(h, w, 3)))

    def extra_input() -> ServedCase:
        h, w = small()
        return case("frame-extra-input", _frame_tensor(pixels(h, w, 3)),
                    TensorSpec("EXTRA", "UINT8", pixels(2, 2, 3)))

    def no_input() -> ServedCase:
        return ServedCase("frame-no-input", "anonymize_frame", ())

    def tiny_valid() -> ServedCase:
        shape = [(1, 1, 3), (1, int(rng.integers(1, 40)), 3), (int(rng.integers(1, 40)), 1, 3),
                 (*small(), 3)][int(rng.integers(4))]
        return case("frame-tiny-valid", _frame_tensor(pixels(*shape)), expect="accept")

    return {"frame-dtype": dtype, "frame-rank": rank, "frame-channels": channels, "frame-empty": empty,
            "frame-oversize": oversize, "frame-shape-lie": shape_lie, "frame-bytes": as_bytes,
            "frame-wrong-name": wrong_name, "frame-extra-input": extra_input, "frame-no-input": no_input,
            "frame-tiny-valid": tiny_valid}


def _packet_tensor_cases(rng: np.random.Generator, mutator: PacketMutator) -> dict[str, Callable[[], ServedCase]]:
    def case(kind: str, *tensors: TensorSpec, expect: str = "reject") -> ServedCase:
        return ServedCase(kind, "analyze_bitstream", tensors, expect)

    def seed() -> bytes:
        return mutator.seeds[int(rng.integers(len(mutator.seeds)))]

    def mutated() -> ServedCase:
        c = mutator.case()
        return case(f"packet-{c.kind}", _packet_tensor(c.data), expect="accept" if c.kind == "valid" else "either")

    def dtype() -> ServedCase:
        data = np.frombuffer(seed(), dtype=np.uint8)
        return case("packet-dtype", TensorSpec("PACKET", "UINT8", data.copy()))

    def count() -> ServedCase:
        return case("packet-count", _packet_tensor([seed()] * int(rng.choice([0, 2, 3]))))

    def rank() -> ServedCase:
        return case("packet-rank", _packet_tensor(seed(), shape=(1, 1)))

    def shape_lie() -> ServedCase:
        t = _packet_tensor(seed())
        return case("packet-shape-lie", TensorSpec(t.name, t.datatype, t.array, (int(rng.choice([0, 2, 1000])),)))

    def framing() -> ServedCase:
        data = seed()  # BYTES on the wire: uint32 length + bytes per element; lie about the length
        raw = [struct.pack("<I", len(data) + int(rng.integers(1, 1 << 20))) + data,
               struct.pack("<I", len(data)) + data + b"\x00\x01", b"\x01\x00", b""][int(rng.integers(4))]
        return case("packet-framing", _packet_tensor(data, raw=raw))

    return {"packet-mutated": mutated, "packet-dtype": dtype, "packet-count": count, "packet-rank": rank,
            "packet-shape-lie": shape_lie, "packet-framing": framing}


def served_cases(mutator: PacketMutator, n: int, limits: FrameLimits = FrameLimits(), seed: int = 0,
                 huge_frame: tuple[int, int] | None = None, largest_packet: bytes | None = None) -> list[ServedCase]:
    """``n`` requests: about half mutated packets, half malformed frame/packet tensors.

    The first cases are the largest ones (run them as the warm-up of :func:`fuzz_server`:
    ONNX Runtime's arenas and the python backend's shared memory grow to the largest
    request once and keep that size).

    Args:
        mutator: packet cases (and seeds) of the served codec.
        n: number of cases.
        limits: the server's frame limits (oversize cases just above them).
        seed: random seed.
        huge_frame: ``(H, W)`` of one very large zero frame (e.g. 4096x4096, 48 MiB), sent
            first; None: none.
        largest_packet: a valid packet of the largest accepted frame
            (:meth:`PacketTarget.largest_packet`); with it, the largest valid frame and this
            packet come next. Each of these counts as one of the ``n``.
    """
    rng = np.random.default_rng(seed)
    frame_kinds, tensor_kinds = _frame_cases(rng, limits), _packet_tensor_cases(rng, mutator)
    other = list(frame_kinds.values()) + [v for k, v in tensor_kinds.items() if k != "packet-mutated"]
    cases = []
    if huge_frame is not None:
        cases.append(ServedCase("frame-huge", "anonymize_frame",
                                (_frame_tensor(np.zeros((*huge_frame, 3), np.uint8)),)))
    if largest_packet is not None:
        largest = rng.integers(0, 256, (limits.max_height, limits.max_width, 3), dtype=np.uint8)
        cases += [ServedCase("frame-largest-valid", "anonymize_frame", (_frame_tensor(largest),), "accept"),
                  ServedCase("packet-largest-valid", "analyze_bitstream", (_packet_tensor(largest_packet),),
                             "accept")]
    while len(cases) < n:
        make = tensor_kinds["packet-mutated"] if rng.random() < 0.5 else other[int(rng.integers(len(other)))]
        cases.append(make())
    return cases


def process_tree_rss(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MiB (tritonserver + python stubs)."""
    psutil = require("psutil", "dev")
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def _grpc_input(grpcclient, spec: TensorSpec):
    tensor = grpcclient.InferInput(spec.name, list(spec.array.shape), spec.datatype)
    tensor.set_data_from_numpy(spec.array)
    if spec.shape is not None:
        tensor.set_shape(list(spec.shape))
    if spec.raw is not None:
        tensor._raw_content = spec.raw  # malformed wire bytes: tritonclient has no public way
    return tensor


def _check_answer(result, case: ServedCase) -> str:
    """'' if the answer follows DESIGN.md section 4, else what is wrong."""
    names = {o.name for o in result.get_response().outputs}
    expected = {"ANONYMIZED", "BOXES", "SCORES"} | ({"BITS"} if case.model == "anonymize_frame" else set())
    if names != expected:
        return f"outputs {sorted(names)}; expected {sorted(expected)}"
    frame, boxes, scores = (result.as_numpy(n) for n in ("ANONYMIZED", "BOXES", "SCORES"))
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        return f"ANONYMIZED {frame.dtype} {list(frame.shape)}"
    if boxes.ndim != 2 or boxes.shape[1:] != (4,) or scores.shape != (boxes.shape[0],):
        return f"BOXES {list(boxes.shape)} / SCORES {list(scores.shape)}"
    return ""


def fuzz_server(url: str, cases: Sequence[ServedCase], good: Sequence[ServedCase], *, pid: int | None = None,
                timeout_s: float = 30.0, check_every: int = 25, warmup: int = 0,
                client_kwargs: dict | None = None) -> FuzzReport:
    """Send ``cases`` to a running server and check each answer, its readiness and memory.

    Args:
        url: gRPC address.
        cases: requests to send (:func:`served_cases`).
        good: valid requests; every ``check_every`` cases the server must be ready and
            answer each of them.
        pid: tritonserver's pid, to sample the RSS of it and its python stubs (needs psutil).
        timeout_s: client deadline per request; a case over it is a failure (a hang).
        check_every: cases between readiness checks.
        warmup: the first ``warmup`` cases are run before the ``before`` memory sample
            (allocators and shared memory grow once) and are not counted.
        client_kwargs: extra ``tritonclient.grpc.InferenceServerClient`` arguments (TLS).

    Returns:
        The report; ``memory`` has ``before_mib``, ``after_mib``, ``peak_mib`` and the
        ``samples`` (``[cases, MiB]`` after each health check) when ``pid`` is given, and
        ``stopped_at`` is set if the server stopped answering.
    """
    grpcclient = require("tritonclient.grpc", "serve")
    utils = require("tritonclient.utils", "serve")
    report = FuzzReport("server")
    samples: list[float] = []
    series: list[list[float]] = []  # [cases so far, MiB]

    def sample() -> float | None:
        if pid is None:
            return None
        value = process_tree_rss(pid)
        samples.append(value)
        series.append([report.cases, round(value, 1)])
        return value

    def send(client, case: ServedCase) -> tuple[str, str]:
        try:
            inputs = [_grpc_input(grpcclient, t) for t in case.inputs]
        except Exception as exc:  # the client library refused to build it: not a server test
            return "skipped", f"tritonclient refused: {exc}"
        try:
            result = client.infer(case.model, inputs, client_timeout=timeout_s)
        except utils.InferenceServerException as exc:
            status = str(exc.status() or "").rsplit(".", 1)[-1]
            if status == "INVALID_ARGUMENT" and case.expect != "accept":
                return REJECTED, "INVALID_ARGUMENT"
            return FAILURE, f"{status or 'no status'}: {exc.message()}"
        if case.expect == "reject":
            return FAILURE, "a malformed request was answered as if valid"
        problem = _check_answer(result, case)
        return (FAILURE, problem) if problem else (ACCEPTED, "")

    def healthy(client) -> str:
        try:
            if not client.is_server_ready():
                return "server not ready"
            for g in good:
                outcome, why = send(client, g)
                if outcome != ACCEPTED:
                    return f"valid {g.kind} request failed: {why}"
        except utils.InferenceServerException as exc:
            return f"health check failed: {exc}"
        return ""

    with grpcclient.InferenceServerClient(url, **(client_kwargs or {})) as client:
        problem = healthy(client)
        if problem:
            raise ConnectionError(f"fuzz_server: the server at {url} is not healthy before fuzzing: {problem}")
        for case in cases[:warmup]:
            send(client, case)
        before = sample()
        if before is not None:
            report.memory["before_mib"] = round(before, 1)
        start = time.perf_counter()
        for i, case in enumerate(cases[warmup:], 1):
            t0 = time.perf_counter()
            outcome, why = send(client, case)
            seconds = time.perf_counter() - t0
            if outcome == "skipped":
                logger.info("fuzz server: %s skipped: %s", case.kind, why)
                report.skipped += 1
                continue
            report.record(case.kind, outcome, seconds, why, case.head())
            if i % check_every == 0 or i == len(cases) - warmup:
                problem = healthy(client)
                sample()
                if problem:
                    report.record("health-check", FAILURE, 0.0, f"after case {i} ({case.kind}): {problem}")
                    report.memory["stopped_at"] = i
                    break
        report.elapsed_s = time.perf_counter() - start
    if samples:
        report.memory.update(after_mib=round(samples[-1], 1), peak_mib=round(max(samples), 1))
        report.memory["samples"] = series  # type: ignore[assignment]
    return report
