"""How late the runner's event loop answers: a measure of its stalls, for benches and debugging.

Everything on the runner's loop (the dispatcher, the executor, the trigger sources, hot reloads)
waits while one callback runs without yielding; background work (a resume of a large backlog, a
first scan of a large table, pruning) must keep each of its synchronous sections short.
``LoopLag`` measures that from inside: a task sleeps ``tick_s`` again and again and records how
much later than asked it wakes up (the longest stall since the last report, give or take a tick).

With ``AUTOMATIONS_DEBUG_LOOP_LAG`` set to a number of seconds (``1``: every second), the runner
logs one line that often (``automations.runner``, INFO)::

    event loop lag: max 3.1 ms over the last 1.0 s (max since start 12.4 ms)

Unset, ``0`` or not a number: nothing is measured.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping

__all__ = ["ENV_VAR", "LoopLag", "report_interval"]

log = logging.getLogger("automations.runner")

ENV_VAR = "AUTOMATIONS_DEBUG_LOOP_LAG"
#: The shortest report interval honoured (a smaller value logs this often).
_MIN_REPORT_S = 0.1


def report_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between lag reports asked for by ``AUTOMATIONS_DEBUG_LOOP_LAG`` (``None``: off)."""
    try:
        every = float(env.get(ENV_VAR, "") or 0)
    except ValueError:
        return None
    if not math.isfinite(every) or every <= 0:
        return None
    return max(every, _MIN_REPORT_S)


class LoopLag:
    """The lateness of a ``tick_s`` sleep on the running loop, measured while ``run`` runs."""

    def __init__(self, tick_s: float = 0.005) -> None:
        self.tick_s = tick_s
        #: The longest lateness since ``take`` last reset it, and since the start (seconds).
        self.window_max_s = 0.0
        self.max_s = 0.0
        #: Ticks measured since the start.
        self.ticks = 0

    def take(self) -> float:
        """The longest lateness since the last ``take`` (seconds); starts a new window."""
        worst, self.window_max_s = self.window_max_s, 0.0
        return worst

    async def run(self) -> None:
        """Measure until cancelled."""
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.tick_s)
            late = time.perf_counter() - asked - self.tick_s
            self.ticks += 1
            if late > self.window_max_s:
                self.window_max_s = late
                if late > self.max_s:
                    self.max_s = late

    async def report(self, every_s: float) -> None:
        """Measure, and log the longest lateness every ``every_s`` seconds, until cancelled."""
        measuring = asyncio.get_running_loop().create_task(self.run(), name="loop-lag")
        try:
            while True:
                began = time.monotonic()
                await asyncio.sleep(every_s)
                log.info(
                    "event loop lag: max %.1f ms over the last %.1f s (max since start %.1f ms)",
                    self.take() * 1000,
                    time.monotonic() - began,
                    self.max_s * 1000,
                )
        finally:
            measuring.cancel()
