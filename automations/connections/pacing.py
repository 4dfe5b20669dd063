"""Pacing across nodes: one rate limit per provider key, however many runners send with it.

``Pacing`` makes the ``Pacer`` of each provider key. Without a gate it is today's in-process
``RateLimiter`` (a store one process owns: SQLite, memory). With a ``RateGate`` (PostgreSQL:
``stores/rate_gate.py``) it is a ``SharedRateLimiter``, which takes every slot from the gate:

    acquire := (local FIFO: callers of this process one at a time)
               wait out this process's own hold (a 429 it saw itself)
               reserve the key's next slot at the gate (one statement; the server's clock)
               sleep until it -> Slot
               went later than ``guard / 2`` past it (a late wake-up, or its request held up
               by a connection handshake: ``Slot.sent``): tell the gate by how much

- **One reservation per process at a time.** The local lock is held across the sleep, so a
  process never books a slot ahead of the one it waits for: the book is at most one slot per
  node ahead of now, and a node that stops sending holds no slots.
- **Lateness moves the window, not the count.** Slots are ``(per + guard) / rate`` apart, so any
  ``rate + 1`` of them span ``per + guard``. A request that goes up to ``guard / 2`` after its
  slot leaves that span above ``per``. One that goes later (a busy machine wakes up late, a new
  connection's TLS handshake) tells the gate, which then keeps the slot ``rate`` places after it
  ``per + guard`` after the time it really went: no sliding second ever sees more than ``rate``,
  whoever was late, and only the lateness is lost, not a slot. Lateness is measured from the
  earliest time the slot can have been (when the reservation was sent, plus its wait), so it is
  never underestimated; the report reaches the gate before that later slot is booked (it is
  booked about ``per`` minus one slot per node later). A slot missed by more than half of
  ``per`` (a stalled process) is given up instead, and another one reserved.
- **Holds reach every node.** A provider's pacing signal (``Retry-After``, Quo's ``ratelimit``,
  Loops' ``x-ratelimit-*``: ``signals.py``) holds this process at once and is written to the gate
  in the background, which moves the key's next free slot for everyone. Slots already reserved
  by other nodes (at most one each) still go: those requests meet the provider's 429, which
  proves nothing was processed, and are retried.
- **No gate, no send.** A gate that cannot be reached raises ``StoreError`` from ``acquire``:
  the request is not sent, its run is left as it was (resumable) and tried again after a
  backoff. The outage is logged once per key (``WARNING``), and its end too.

Gate calls block: they are made on a thread of the ``Pacing`` (``close`` ends it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from automations.errors import StoreError
from automations.ports import Pacer, RateGate, Store
from automations.ratelimit import RateLimiter, Slot
from automations.stores.rate_gate import rate_gate_for

__all__ = ["Pacing", "SharedRateLimiter", "pacing_for"]

log = logging.getLogger("automations.connections")

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
#: Runs a blocking gate call off the event loop.
Io = Callable[..., Awaitable[Any]]


class SharedRateLimiter(Pacer):
    """Paces the requests of provider key ``key`` across every node through ``gate``: at most
    ``rate`` per ``per`` seconds, spaced ``(per + guard) / rate`` apart (see the module)."""

    def __init__(
        self,
        key: str,
        gate: RateGate,
        io: Io,
        rate: float = 10.0,
        per: float = 1.0,
        *,
        guard: float = 0.01,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        name: str | None = None,
    ) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError(f"rate and per must be positive, got rate={rate!r} per={per!r}")
        if guard < 0:
            raise ValueError(f"guard must be >= 0, got {guard!r}")
        self.key = key
        self.rate = rate
        self.per = per
        self.guard = guard
        self.interval = (per + guard) / rate
        #: Slots in one window of ``per`` seconds.
        self.count = max(1, math.floor(rate))
        #: How late past its slot a request may go without telling the gate.
        self.tolerance = guard / 2
        self.name = name or key
        self._gate = gate
        self._io = io
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._held_until = 0.0
        self._released = 0
        #: Slots that went later than ``tolerance`` (and were reported to the gate).
        self.reported_late = 0
        #: Slots given up: the process woke more than half a window after them.
        self.given_up = 0
        self._down = False
        self._pushes: set[asyncio.Task[None]] = set()

    @property
    def released(self) -> int:
        return self._released

    @property
    def held_until(self) -> float:
        """The clock time before which this process releases nothing (0 when never held)."""
        return self._held_until

    async def acquire(self) -> Slot:
        async with self._lock:
            while True:
                wait = self._held_until - self._clock()
                if wait > 0:
                    await self._sleep(wait)
                asked = self._clock()
                ahead, number = await self._reserve()
                if ahead > 0:
                    await self._sleep(ahead)
                # The server took the slot while the statement was out, so it is no earlier
                # than ``asked + ahead``: measured from there, lateness is never underestimated.
                due = asked + ahead
                if self._clock() - due <= self.per / 2:
                    break
                # so late (a stalled process) that the slots after it may be booked before the
                # gate could hear of it: this one is given up
                self.given_up += 1
            slot = _SharedSlot(self._clock(), self._clock, self, number, due)
            slot.check()
            self._released += 1
            return slot

    def _late(self, number: int, late: float) -> None:
        """Tell the gate that slot ``number`` went ``late`` seconds after its time."""
        self.reported_late += 1
        self._background(self._io(self._gate.report_late, self.key, number, late), "a late slot")

    async def _reserve(self) -> tuple[float, int]:
        try:
            ahead, number = await self._io(self._gate.reserve, self.key, self.interval, self.count)
        except StoreError as exc:
            if not self._down:
                self._down = True
                log.warning(
                    "%s: the shared rate limit cannot be reached (%s); nothing is sent with "
                    "this key until it answers, and the runs waiting for it are tried again",
                    self.name,
                    exc,
                )
            raise StoreError(
                f"{self.name}: the shared rate limit cannot be reached, nothing was sent ({exc})"
            ) from exc
        if self._down:
            self._down = False
            log.info("%s: the shared rate limit answers again; sending resumes", self.name)
        return float(ahead), int(number)

    def hold(self, seconds: float) -> None:
        self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))
        self._background(self._io(self._gate.hold, self.key, seconds), f"a hold of {seconds:g} s")

    def _background(self, call: Awaitable[object], what: str) -> None:
        async def run() -> None:
            try:
                await call
            except StoreError as exc:  # this node paces by it anyway; others meet their 429s
                log.warning("%s: could not share %s with the other nodes: %s", self.name, what, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    def __repr__(self) -> str:
        return f"SharedRateLimiter(rate={self.rate!r}, per={self.per!r}, guard={self.guard!r})"


class _SharedSlot(Slot):
    """A slot of a ``SharedRateLimiter``: when it (or its request, ``sent``) goes later than the
    tolerance past its time, the gate hears by how much."""

    __slots__ = ("_due", "_limiter", "_number", "_told")

    def __init__(
        self, at: float, clock: Clock, limiter: SharedRateLimiter, number: int, due: float
    ) -> None:
        super().__init__(at, clock)
        self._limiter = limiter
        self._number = number
        self._due = due
        self._told = 0.0  # lateness already reported

    def check(self) -> None:
        late = self.at - self._due
        if late > self._limiter.tolerance and late > self._told:
            self._limiter._late(self._number, late - self._told)
            self._told = late

    def sent(self) -> None:
        super().sent()
        self.check()


class Pacing:
    """Makes each provider key's ``Pacer``: shared through ``gate`` when given, else local to
    this process. Close it (``close``) to end its gate thread."""

    def __init__(self, gate: RateGate | None = None) -> None:
        self.gate = gate
        self._pool: ThreadPoolExecutor | None = None

    @property
    def shared(self) -> bool:
        """Whether keys are paced across nodes."""
        return self.gate is not None

    def pacer(
        self,
        key: str,
        rate: float,
        *,
        guard: float,
        clock: Clock,
        sleep: Sleep,
        name: str | None = None,
    ) -> Pacer:
        """The pacer of ``key`` (``rate`` per second, ``guard`` seconds of margin)."""
        if self.gate is None:
            return RateLimiter(rate, 1.0, guard=guard, clock=clock, sleep=sleep)
        return SharedRateLimiter(
            key, self.gate, self._call, rate, 1.0, guard=guard, clock=clock, sleep=sleep, name=name
        )

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rate-gate")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args))

    def close(self) -> None:
        """Wait for the gate calls already made, then end the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def pacing_for(store: Store) -> Pacing:
    """The pacing of every process sending with ``store``'s runs: shared through the store on
    PostgreSQL (several nodes), local to this process otherwise."""
    return Pacing(rate_gate_for(store))
