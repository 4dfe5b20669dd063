"""Client-side pacing: one slot every ``(per + guard) / rate`` seconds, first come first served.

Quo counts requests in fixed one-second windows aligned to the clock (10 per window per API key);
Loops allows 10 per second per team. Pacing evenly rather than in bursts keeps every window, fixed
or sliding, under the limit:

- Slots are spaced on the *actual* release times (the moment ``acquire()`` returns), so a sleep
  that overshoots never squeezes the next gap.
- Any ``rate`` consecutive releases then span at least ``per + guard`` seconds. The ``guard``
  absorbs the jitter between release and arrival at the provider (the event loop, the connection
  pool, the network): without it, 10 requests released exactly 0.1 s apart can land as 11 in one
  sliding second when one is delayed and a later one is not.
- The default guard (10 ms) costs about 1% of throughput; ``bench/bench_pacing.py`` measures the
  delivered rate and the 429 count against both window styles.

One limiter is shared by every concurrent caller of one connection key. Waiters queue on an
``asyncio.Lock``, which wakes them in arrival order (FIFO); a caller cancelled while waiting
gives up its place without disturbing the others. A limiter belongs to one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """Paces ``acquire()`` callers to at most ``rate`` per ``per`` seconds, evenly spaced.

    ``guard`` (seconds) is added to every window of ``per`` seconds as a safety margin for jitter
    between the moment a request is released and the moment the provider counts it. ``clock`` and
    ``sleep`` are injectable so tests run on virtual time.
    """

    def __init__(
        self,
        rate: float = 10.0,
        per: float = 1.0,
        *,
        guard: float = 0.01,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError(f"rate and per must be positive, got rate={rate!r} per={per!r}")
        if guard < 0:
            raise ValueError(f"guard must be >= 0, got {guard!r}")
        self.rate = rate
        self.per = per
        self.guard = guard
        #: Seconds between two releases.
        self.interval = (per + guard) / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._last_release: float | None = None
        self._released = 0

    @property
    def effective_rate(self) -> float:
        """Requests per ``per`` seconds this limiter lets through at most (``rate`` minus guard)."""
        return self.per / self.interval

    @property
    def released(self) -> int:
        """How many slots have been handed out so far."""
        return self._released

    async def acquire(self) -> None:
        """Wait for this caller's slot. Callers are served in the order they called."""
        async with self._lock:
            if self._last_release is not None:
                wait = self._last_release + self.interval - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            # Record the real release time, not the target: an overshooting sleep must widen
            # the following gap, never shrink it.
            self._last_release = self._clock()
            self._released += 1

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate!r}, per={self.per!r}, guard={self.guard!r})"
