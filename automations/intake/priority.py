"""Optionally, the runner's threads yield the CPU to its intake process
(``AUTOMATIONS_RUNNER_NICE``, off by default).

A webhook's sender waits for its answer (and gives up after a few seconds); a run waits in the
store for its turn, paced by the providers' rate limits (10 requests a second) far more than by
the CPU. With ``AUTOMATIONS_RUNNER_NICE=N`` the runner's threads run at a nice value N above
the intake process, which then has the CPU whenever both want it. Off by default: the runner
would be lowered against every other program on the machine too (the flood gate,
``link.FLOOD_WAIT_S``, gives the intake priority without that). The intake process is started
from a thread kept at the original priority (``Spawner``), so it, and any restart of it, keeps
that priority.

Linux sets a nice value per thread: each of the runner's threads is lowered, and threads it
starts later inherit the value. Elsewhere the whole process is lowered after the intake process
started (a restarted intake process then inherits it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from automations.errors import ConfigError

__all__ = ["RUNNER_NICE", "Spawner", "lower_runner", "runner_nice"]

log = logging.getLogger("automations.runner")

RUNNER_NICE = 0
T = TypeVar("T")


def runner_nice(env: Mapping[str, str]) -> int:
    """``AUTOMATIONS_RUNNER_NICE`` (0 to 19; 0 leaves the runner's priority alone)."""
    text = env.get("AUTOMATIONS_RUNNER_NICE", "").strip()
    if not text:
        return RUNNER_NICE
    if not text.isdigit() or int(text) > 19:
        raise ConfigError(
            f"AUTOMATIONS_RUNNER_NICE must be a whole number from 0 to 19, not {text!r}",
            variable="AUTOMATIONS_RUNNER_NICE",
        )
    return int(text)


class Spawner:
    """A thread started before the runner lowers its priority: what it starts keeps the
    original one."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-spawner")
        self.native_id: int = self._pool.submit(threading.get_native_id).result()

    def run(self, fn: Callable[[], T]) -> T:
        return self._pool.submit(fn).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def lower_runner(nice: int, keep: int | None) -> None:
    """Lower every thread of this process by ``nice`` but the thread ``keep`` (a native id)."""
    if nice <= 0:
        return
    if sys.platform.startswith("linux"):
        try:
            tasks = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            tasks = []
        for tid in tasks:
            if tid == keep:
                continue
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        return
    with contextlib.suppress(OSError):
        os.nice(nice)
