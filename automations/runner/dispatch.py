"""Bounded, ordered execution of runs taken from the inbox.

Runs execute concurrently up to a limit; runs that share an order key (the same row of the same
recipe) execute one at a time, in the order they were submitted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from automations.records import RunRecord

__all__ = ["Dispatcher"]

log = logging.getLogger("automations.runner")


class Dispatcher:
    def __init__(
        self,
        execute: Callable[[RunRecord], Awaitable[None]],
        concurrency: int = 8,
        *,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._execute = execute
        #: Awaited before each run starts (``IntakePressure.wait``: webhooks first in a burst).
        self._gate = gate
        self._slots = asyncio.Semaphore(concurrency)
        self._chains: dict[str, deque[RunRecord]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._submitted: set[str] = set()
        self.closed = False
        #: Closed without finishing queued runs: a run still waiting for a slot does not start.
        self._hold = False

    @property
    def in_flight(self) -> int:
        return len(self._submitted)

    def submit(self, run: RunRecord, order_key: str | None = None) -> bool:
        """Schedule ``run``; ``False`` when it is already scheduled or the dispatcher is closed
        (the run stays pending in the store and is resumed on the next start)."""
        if self.closed or run.id in self._submitted:
            return False
        self._submitted.add(run.id)
        key = order_key if order_key is not None else "run:" + run.id
        chain = self._chains.get(key)
        if chain is not None:
            chain.append(run)
            return True
        self._chains[key] = deque()
        task = asyncio.get_running_loop().create_task(self._run_chain(key, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run_chain(self, key: str, run: RunRecord) -> None:
        while True:
            try:
                async with self._slots:
                    if self._gate is not None and not self._hold:
                        await self._gate()
                    if not self._hold:
                        await self._execute(run)
            except Exception:  # a bug must not stop the chain; the run stays resumable
                log.exception("run %s could not be executed", run.id)
            finally:
                self._submitted.discard(run.id)
            chain = self._chains[key]
            if not chain or self.closed:
                for left in chain:
                    self._submitted.discard(left.id)
                del self._chains[key]
                return
            run = chain.popleft()

    async def wait_idle(self) -> None:
        """Wait until every submitted run (queued ones too) has executed."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def close(self, *, finish_queued: bool = True) -> None:
        """Take no more runs. With ``finish_queued=False`` the runs waiting for a slot do not
        start either: they stay ``pending`` in the store and run on the next start, rather than
        begin sending during a shutdown that may cut them off (an SMS cut off is ``unknown``)."""
        self.closed = True
        self._hold = self._hold or not finish_queued

    async def drain(self, timeout: float, *, finish_queued: bool = True) -> bool:
        """Stop taking runs (see ``close``) and wait up to ``timeout`` s for those submitted;
        ``True`` when all finished. Runs cut off stay ``running`` in the store and are resumed
        on restart."""
        self.close(finish_queued=finish_queued)
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        return not pending
