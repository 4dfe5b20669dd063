"""Client-side pacing: one slot every ``(per + guard) / rate`` seconds, first come first served.

Quo counts requests in fixed one-second windows aligned to the clock (10 per window per API key);
Loops allows 10 per second per team. Pacing evenly rather than in bursts keeps every window, fixed
or sliding, under the limit:

- Releases follow a schedule, one every ``interval = (per + guard) / rate`` seconds, so any
  ``rate`` consecutive releases span ``per + guard``. The ``guard`` absorbs the jitter between
  release and arrival at the provider (event loop, connection pool, network): without it,
  requests released exactly 0.1 s apart can land as 11 in one sliding second when one is delayed
  and a later one is not. The default (10 ms) costs 1% of throughput.
- The schedule, not the actual wake-up time, sets the next slot: sleeps wake up ~1 ms late, and
  letting that lateness accumulate would cost another 1%.
- A check on *actual* times backs the schedule up: a release never comes less than
  ``per + guard / 2`` after the one ``rate`` places before it. Each ``acquire()`` returns a
  ``Slot``; its time is the release, moved to the moment the request really went out when the
  sender reports it (``Slot.sent()``). A very late wake-up (a busy event loop) or a request held
  up opening a connection (TCP and TLS handshakes delay the first request of a burst, not the
  next ones) then shifts the schedule instead of crowding the next window.

``bench/bench_pacing.py`` measures the delivered rate and the 429 count against both window
styles. One limiter is shared by every concurrent caller of one connection key. Waiters queue on
an ``asyncio.Lock``, which wakes them in arrival order (FIFO); a caller cancelled while waiting
gives up its place without disturbing the others. A limiter belongs to one event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from automations.ports import Pacer

__all__ = ["RateLimiter", "Slot"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Slot:
    """One release. ``at`` is when it was released, or when its request went out if later."""

    __slots__ = ("_clock", "at")

    def __init__(self, at: float, clock: Clock) -> None:
        self.at = at
        self._clock = clock

    def sent(self) -> None:
        """Record that the request is on the wire now (the limiter spaces from this time)."""
        self.at = max(self.at, self._clock())


class RateLimiter(Pacer):
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
        #: Seconds between two scheduled releases.
        self.interval = (per + guard) / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        # The window check: releases[-count] + span - slack <= the next release (actual times).
        self._count = max(1, math.floor(rate))
        self._span = self._count * self.interval
        self._slack = guard / 2 * (self._span / (per + guard))
        self._recent: deque[Slot] = deque(maxlen=self._count)
        self._next: float | None = None
        self._released = 0
        #: No slot is released before this time (the provider asked the connection to wait).
        self._held_until = 0.0

    @property
    def effective_rate(self) -> float:
        """Requests per ``per`` seconds this limiter lets through at most (``rate`` minus guard)."""
        return self.per / self.interval

    @property
    def released(self) -> int:
        """How many slots have been handed out so far."""
        return self._released

    async def acquire(self) -> Slot:
        """Wait for this caller's slot. Callers are served in the order they called."""
        async with self._lock:
            now = self._clock()
            # After an idle spell the schedule restarts now: unused slots are not saved up.
            target = now if self._next is None else max(self._next, now)
            if len(self._recent) == self._count:
                target = max(target, self._recent[0].at + self._span - self._slack)
            target = max(target, self._held_until)
            if target > now:
                await self._sleep(target - now)
            slot = Slot(self._clock(), self._clock)
            self._recent.append(slot)
            self._next = target + self.interval
            self._released += 1
            return slot

    def hold(self, seconds: float) -> None:
        """Release nothing for ``seconds`` from now (the provider's own signal: ``Retry-After``,
        a rate-limit window that is used up). Every waiting and later caller waits; a shorter
        hold never shortens a longer one."""
        self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))

    @property
    def held_until(self) -> float:
        """The clock time before which no slot is released (0 when never held)."""
        return self._held_until

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate!r}, per={self.per!r}, guard={self.guard!r})"
