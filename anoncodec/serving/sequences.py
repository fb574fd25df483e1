"""The server's per-camera sequence states, bounded in number, size and idle time.

Numpy and :mod:`anoncodec.replenish` only. Triton's sequence batcher routes every request
of a sequence (one correlation ID per camera) to the same model instance and bounds the
sequences it schedules; it does not tell the model when a sequence times out. This store
therefore bounds itself too: at most ``max_cameras`` states (the least recently used one
is dropped first), each at most ``max_state_bytes``, none kept longer than ``idle_s``
without a request. A camera whose state was dropped gets ``reference`` errors for its
deltas and answers with a keyframe.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from anoncodec.entropy_coder import FactorizedTables
from anoncodec.errors import ConfigError, InvalidRequestError, PacketReason
from anoncodec.packet import Packet
from anoncodec.replenish import ReplenishDecoder

__all__ = ["SequenceLimits", "SequenceStore"]


@dataclass(frozen=True)
class SequenceLimits:
    """Bounds of the sequence states one model instance keeps.

    Args:
        max_cameras: states kept at once (Triton's ``max_candidate_sequences`` too).
        idle_s: a state unused this long is dropped (Triton's sequence idle timeout too).
        max_state_bytes: largest state of one camera (its latent symbols, int32).
    """

    max_cameras: int = 16
    idle_s: float = 60.0
    max_state_bytes: int = 8 << 20

    def __post_init__(self) -> None:
        if not (isinstance(self.max_cameras, int) and 1 <= self.max_cameras <= 4096):
            raise ConfigError(f"max_cameras={self.max_cameras!r}; expected an integer in 1..4096")
        if not self.idle_s > 0:
            raise ConfigError(f"idle_s={self.idle_s!r}; expected seconds > 0")
        if not (isinstance(self.max_state_bytes, int) and self.max_state_bytes >= 1024):
            raise ConfigError(f"max_state_bytes={self.max_state_bytes!r}; expected an integer >= 1024")

    @property
    def max_total_bytes(self) -> int:
        """The most memory every state together may hold."""
        return self.max_cameras * self.max_state_bytes


class SequenceStore:
    """Correlation ID -> :class:`~anoncodec.replenish.ReplenishDecoder`, bounded.

    Args:
        tables: the served codec's entropy tables.
        limits: how many states, how large, how long idle.
        clock: seconds (monotonic); injectable for tests.
    """

    def __init__(self, tables: FactorizedTables, limits: SequenceLimits = SequenceLimits(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tables, self.limits, self.clock = tables, limits, clock
        self._states: OrderedDict[int, tuple[ReplenishDecoder, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, corrid: int) -> bool:
        return corrid in self._states

    @property
    def state_bytes(self) -> int:
        """Memory every state holds now."""
        return sum(d.state_bytes for d, _ in self._states.values())

    def _expire(self, now: float) -> None:
        for corrid in [c for c, (_, seen) in self._states.items() if now - seen > self.limits.idle_s]:
            del self._states[corrid]

    def decode(self, corrid: int, packet: Packet, start: bool = False, end: bool = False):
        """Decode the next packet of camera ``corrid``'s sequence into ``y_hat`` ``[C, h, w]``.

        Args:
            corrid: the request's correlation ID.
            packet: a parsed version-2 packet.
            start: the sequence's first request (Triton's START flag): any old state goes.
            end: its last (END flag): the state goes after this frame.

        Raises:
            PacketError: the packet does not apply (reason ``reference``) or is malformed.
            InvalidRequestError: the frame's state would exceed ``max_state_bytes``.
        """
        now = self.clock()
        self._expire(now)
        if start:
            self._states.pop(corrid, None)
        shape = packet.streams[0].shape
        need = 4 * shape[0] * shape[1] * shape[2]
        if need > self.limits.max_state_bytes:
            raise InvalidRequestError(
                f"a {packet.height}x{packet.width} frame needs a {need} byte sequence state; this server keeps at "
                f"most {self.limits.max_state_bytes} per camera: send smaller frames or use analyze_bitstream",
                reason=PacketReason.FRAME_SIZE)
        decoder = self._states.pop(corrid, (None, now))[0] or ReplenishDecoder(self.tables)
        try:
            y_hat = decoder.decode(packet)
        finally:
            if not end and decoder.state_bytes:
                self._states[corrid] = (decoder, now)  # most recently used last
                while len(self._states) > self.limits.max_cameras:
                    self._states.popitem(last=False)
        return y_hat
