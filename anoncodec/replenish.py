"""Conditional replenishment: a frame of a sequence coded as the latent cells that changed.

Numpy, ``zlib`` and anoncodec's packet / entropy coder only, so the camera (no PyTorch) and
the server run the same code. Both sides keep the last decoded latent of the sequence as
integer symbols, so their states are equal bit for bit and a delta never drifts:

- a **keyframe** codes every latent cell (exactly like a version-1 packet) and resets the
  state; the camera sends one every ``keyframe_interval`` frames, when asked to, and when
  the frame size changes;
- a **delta frame** codes only the cells (all channels of one latent position) where the
  frame's symbols lower the squared quantization error, averaged over channels, by more
  than ``threshold`` against the state's, plus the cells the guard erased that are not
  yet at the medians; a skip map (one bit per cell, zlib-packed) says which. Their
  symbols use the keyframe's entropy tables. With threshold 0 a delta decodes exactly
  like the intra packet of the same frame.

The decoder refuses a delta that does not apply to its state (another sequence, a frame
index that is not the next one, no keyframe yet) with reason ``reference`` and leaves
the state as it was, so a lost, duplicated or reordered packet never yields a wrong
frame: the camera answers that error with a keyframe.
"""

from __future__ import annotations

import math
import secrets
import zlib
from dataclasses import dataclass

import numpy as np

from anoncodec.entropy_coder import FactorizedTables, quantize_factorized
from anoncodec.errors import ConfigError, PacketError, PacketReason
from anoncodec.packet import FrameType, Packet, SequenceInfo, Stream, check_model_id

__all__ = ["ReplenishConfig", "ReplenishEncoder", "ReplenishDecoder", "changed_cells",
           "pack_skip_map", "unpack_skip_map"]


@dataclass(frozen=True)
class ReplenishConfig:
    """Settings of the camera's conditional replenishment.

    Args:
        keyframe_interval: frames from one keyframe to the next (1: every frame is a
            keyframe, i.e. intra-only coding).
        threshold: a cell is sent again when its new symbols lower the latent's squared
            quantization error, averaged over channels, by more than this (squared
            quantization steps). 0 sends every cell whose symbols changed at all, so
            deltas decode exactly like intra packets.
    """

    keyframe_interval: int = 50
    threshold: float = 0.01

    def __post_init__(self) -> None:
        if not (isinstance(self.keyframe_interval, int) and self.keyframe_interval >= 1):
            raise ConfigError(f"keyframe_interval={self.keyframe_interval!r}; expected an integer >= 1")
        if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold) and self.threshold >= 0):
            raise ConfigError(f"threshold={self.threshold!r}; expected a finite number >= 0")


def pack_skip_map(mask: np.ndarray) -> bytes:
    """A boolean cell mask ``[h, w]`` -> the skip map payload (packed bits, zlib)."""
    return zlib.compress(np.packbits(np.asarray(mask, dtype=bool).ravel()).tobytes(), 9)


def unpack_skip_map(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`pack_skip_map`; any malformed input raises ``PacketError(skip-map)``."""
    cells = shape[0] * shape[1]
    expected = (cells + 7) // 8
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(bytes(data), expected + 1)  # never inflate more than one map
        complete = inflater.eof and not inflater.unused_data
    except zlib.error as exc:
        raise PacketError(f"skip map cannot be inflated: {exc}", reason=PacketReason.SKIP_MAP) from exc
    if len(raw) != expected or not complete:
        raise PacketError(f"skip map holds {len(raw)}{'' if complete else '+'} bytes; a {shape[0]}x{shape[1]} "
                          f"latent needs exactly {expected}", reason=PacketReason.SKIP_MAP)
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[cells:].any():
        raise PacketError("skip map has bits set past its last cell", reason=PacketReason.SKIP_MAP)
    return bits[:cells].astype(bool).reshape(shape)


def changed_cells(y: np.ndarray, symbols: np.ndarray, state: np.ndarray, tables: FactorizedTables,
                  threshold: float, forced: np.ndarray | None = None) -> np.ndarray:
    """Cells ``[h, w]`` a delta frame must send.

    A cell is worth sending when replacing the state's symbols by the frame's lowers the
    latent's squared quantization error, averaged over channels, by more than
    ``threshold`` (in squared quantization steps). With 0 every cell whose symbols changed
    is sent, and the frame decodes exactly as intra coding would decode it.

    Args:
        y: the frame's latent, float ``[C, h, w]`` (after the guard).
        symbols: its quantized symbols.
        state: the symbols both sides hold.
        tables: the entropy tables (medians).
        threshold: least mean squared-error reduction over channels.
        forced: cells that must hold the frame's symbols (the guard's erased heads).
    """
    y = np.asarray(y, dtype=np.float32)
    differs = (symbols != state).any(axis=0)
    gain = (np.square(y - tables.dequantize(state)) - np.square(y - tables.dequantize(symbols))).mean(axis=0)
    send = differs & (gain > threshold)
    if forced is not None:
        send |= differs & np.asarray(forced, dtype=bool)
    return send


def _cell_indexes(channels: int, count: int) -> np.ndarray:
    return np.broadcast_to(np.arange(channels, dtype=np.int64).reshape(channels, 1), (channels, count))


class ReplenishEncoder:
    """The camera's side of a sequence: latents in, version-2 packets out.

    Args:
        tables: the codec's entropy tables.
        config: keyframe interval and change threshold.
    """

    def __init__(self, tables: FactorizedTables, config: ReplenishConfig = ReplenishConfig()) -> None:
        self.tables = tables
        self.config = config
        self._since_key = 0
        self.restart()

    def restart(self) -> None:
        """Start a new sequence (a new id, a keyframe next): after a server restart or a timeout."""
        self.sequence_id = secrets.randbits(32)
        self._state: np.ndarray | None = None
        self._index, self._key_requested = -1, True

    def request_keyframe(self) -> None:
        """Make the next frame a keyframe (the server refused a delta, or on request)."""
        self._key_requested = True

    def encode(self, y: np.ndarray, height: int, width: int, forced: np.ndarray | None = None) -> Packet:
        """Code the latent of the next frame of the sequence.

        Args:
            y: float ``[C, h, w]`` latent (the guard already applied).
            height, width: the frame's size in pixels.
            forced: cells ``[h, w]`` whose symbols must be sent if they differ from the
                state (the guard's erased heads, so they are at the medians in every frame).
        """
        y = np.asarray(y, dtype=np.float32)
        symbols = quantize_factorized(y, self.tables.medians)
        key = (self._key_requested or self._state is None or self._state.shape != symbols.shape
               or self._since_key + 1 >= self.config.keyframe_interval)
        self._index += 1
        model_id = self.tables.model_id
        if key:
            payload = self.tables.coder.encode(symbols, self.tables.channel_indexes(symbols.shape))
            self._state, self._since_key, self._key_requested = symbols, 0, False
            info = SequenceInfo(FrameType.KEY, self.sequence_id, self._index, self._index)
            return Packet(model_id, "factorized", height, width, (Stream(tuple(symbols.shape), payload),), info)
        send = changed_cells(y, symbols, self._state, self.tables, self.config.threshold, forced)
        cells = symbols[:, send]
        payload = self.tables.coder.encode(cells, _cell_indexes(cells.shape[0], cells.shape[1]))
        self._state[:, send] = cells  # nothing after this can fail: no copy needed
        self._since_key += 1
        info = SequenceInfo(FrameType.DELTA, self.sequence_id, self._index, self._index - 1)
        streams = (Stream(tuple(symbols.shape), payload), Stream((1, *symbols.shape[1:]), pack_skip_map(send)))
        return Packet(model_id, "factorized", height, width, streams, info)

    def reference_latent(self) -> np.ndarray:
        """The latent the server holds after the last packet (float ``[C, h, w]``)."""
        if self._state is None:
            raise RuntimeError("no frame encoded yet")
        return self.tables.dequantize(self._state)


class ReplenishDecoder:
    """The server's side of one camera's sequence: version-2 packets in, latents out.

    Args:
        tables: the codec's entropy tables.
    """

    def __init__(self, tables: FactorizedTables) -> None:
        self.tables = tables
        self.sequence_id: int | None = None
        self.frame_index = -1
        self._state: np.ndarray | None = None

    @property
    def state_bytes(self) -> int:
        """Memory the state holds."""
        return 0 if self._state is None else self._state.nbytes

    def reset(self) -> None:
        """Forget the state: the next packet must be a keyframe."""
        self.sequence_id, self.frame_index, self._state = None, -1, None

    def decode(self, packet: Packet) -> np.ndarray:
        """Decode the next frame of the sequence into ``y_hat`` (float32 ``[C, h, w]``).

        Raises:
            PacketError: reason ``reference`` when a delta does not apply to the state
                (the state is kept; the camera must send a keyframe), ``frame-type`` for
                a version-1 packet, other reasons for malformed payloads.
            ModelMismatchError: the packet was encoded by other weights.
        """
        check_model_id(packet, self.tables.model_id)
        info = packet.sequence
        if info is None:
            raise PacketError("a sequence takes version-2 packets (keyframes and deltas); this is a frame on its "
                              "own: send it to analyze_bitstream", reason=PacketReason.FRAME_TYPE)
        shape = tuple(packet.streams[0].shape)
        if info.is_key:
            symbols = self.tables.coder.decode(packet.streams[0].data, self.tables.channel_indexes(shape))
            self._state, self.sequence_id, self.frame_index = symbols, info.sequence_id, info.frame_index
            return self.tables.dequantize(symbols)
        self._check_reference(info, shape)
        send = unpack_skip_map(packet.streams[1].data, shape[1:])
        count = int(send.sum())
        cells = self.tables.coder.decode(packet.streams[0].data, _cell_indexes(shape[0], count))
        # the payload decoded: only now is the state touched (a refused or broken delta leaves it)
        self._state[:, send] = cells
        self.frame_index = info.frame_index
        return self.tables.dequantize(self._state)

    def _check_reference(self, info: SequenceInfo, shape: tuple[int, ...]) -> None:
        if self._state is None:
            problem = "no keyframe of this sequence was decoded (a new camera, or the server restarted)"
        elif info.sequence_id != self.sequence_id:
            problem = f"it belongs to sequence {info.sequence_id:#010x}, the state to {self.sequence_id:#010x}"
        elif info.reference_index != self.frame_index or info.frame_index != self.frame_index + 1:
            problem = (f"it is frame {info.frame_index} on frame {info.reference_index}, the last decoded frame "
                       f"is {self.frame_index} (a lost, duplicated or reordered packet)")
        elif shape != self._state.shape:
            problem = f"its latent {shape} is not the state's {self._state.shape}"
        else:
            return
        raise PacketError(f"delta frame does not apply: {problem}; send a keyframe", reason=PacketReason.REFERENCE)
