"""Malformed requests to the served ensembles: the cases and what each must get.

May import numpy and :mod:`anoncodec.qa.fuzz_packets` (mutated packets); never
tritonclient (:mod:`anoncodec.qa.fuzz_server` sends the cases)::

    PacketMutator --> mutated packets ------------> served_cases --> analyze_bitstream
    frame/tensor mutations -------------------------------------/--> anonymize_frame

Besides mutated packets: wrong dtypes, ranks and channel counts, zero-size and oversized
frames, shapes that lie about the data, malformed ``BYTES`` framing, missing and unknown
inputs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from anoncodec.qa.fuzz_packets import PacketMutator
from anoncodec.serving.stages import FrameLimits

__all__ = ["TensorSpec", "ServedCase", "served_cases"]


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
