"""Server outages, as the camera client sees them: whether frames are being held for a server
that answered before and is now unreachable, and the readiness probe that ends the hold.

Standard library and anoncodec's ``edge.metrics`` and ``edge.client_config`` (for types)
only. The client decides what an outage does to its frames; this module only knows when one
starts, when it ends and how (the server is back, or ``outage_timeout_s`` ran out).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anoncodec.edge.client_config import ClientConfig
    from anoncodec.edge.metrics import CameraMetrics

__all__ = ["OutageWatch"]

logger = logging.getLogger(__name__)


class OutageWatch:
    """One run's outages: at most one at a time, each probed until it ends.

    Args:
        config: ``outage_timeout_s`` (how long to probe) and ``backoff_s``,
            ``backoff_factor``, ``backoff_max_s`` (the waits between probes).
        metrics: its ``outages`` counter and ``reachable`` gauge are kept up to date.
        infer: the inference function; ``await infer.ready()`` (bool), if it has one, is
            the probe, else the server counts as back at the first probe (the next
            request is the real test).
        sleep: the coroutine that waits between probes.
        on_end: called with ``(back, elapsed_s)`` when an outage ends, after the waiting
            requests were told (:meth:`wait`).

    Attributes:
        seen_server: the server has answered (the client sets it); only then is an
            ``UNAVAILABLE`` an outage worth waiting for. Reset when an outage is given up.
        count: outages started.
    """

    def __init__(self, config: ClientConfig, metrics: CameraMetrics, infer: Any,
                 sleep: Callable[[float], Awaitable[None]], on_end: Callable[[bool, float], None]) -> None:
        self.config, self.metrics, self.infer = config, metrics, infer
        self._sleep, self._on_end = sleep, on_end
        self.seen_server = False
        self.count = 0
        self._outage: asyncio.Future | None = None
        self._probe_task: asyncio.Task | None = None

    @property
    def pending(self) -> bool:
        """An outage has started and not ended: frames are held."""
        return self._outage is not None and not self._outage.done()

    def start(self) -> bool:
        """Start an outage and its probe, unless one is pending; returns whether it started one."""
        if self.pending:
            return False
        self._outage = asyncio.get_running_loop().create_future()
        self.count += 1
        self.metrics.outages.inc()
        self.metrics.reachable.set(0)
        self._probe_task = asyncio.create_task(self._probe(self._outage))
        return True

    async def wait(self) -> bool:
        """Wait for the last outage to end: True if the server is back, False if given up."""
        return await asyncio.shield(self._outage)

    def cancel(self) -> None:
        """Stop probing (the run is over)."""
        if self._probe_task is not None:
            self._probe_task.cancel()

    async def _probe(self, outage: asyncio.Future) -> None:
        """Check readiness with growing waits; resolve ``outage`` with True (back) or False (gave up)."""
        c = self.config
        start, waited = time.monotonic(), 0.0
        delay = max(c.backoff_s, 0.05)
        back = False
        try:
            while True:
                remaining = c.outage_timeout_s - max(waited, time.monotonic() - start)
                if remaining <= 0:
                    break
                step = min(delay, remaining)
                await self._sleep(step)
                waited += step
                if await self._server_ready():
                    back = True
                    break
                delay = min(delay * c.backoff_factor, max(c.backoff_max_s, 0.05))
        finally:
            elapsed = time.monotonic() - start
            self.seen_server = back  # after giving up: fail fast until the server answers again
            if back:
                self.metrics.reachable.set(1)
            if not outage.done():
                outage.set_result(back)
            self._on_end(back, elapsed)

    async def _server_ready(self) -> bool:
        ready = getattr(self.infer, "ready", None)
        if ready is None:  # an injected infer function: its next request is the probe
            return True
        try:
            return bool(await ready())
        except Exception as exc:  # a probe must never end the outage with an error
            logger.debug("readiness probe failed: %s", exc)
            return False
