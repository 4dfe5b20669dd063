"""Group commit for the webhook intake: the runs accepted in one turn of the event loop are
recorded with one commit.

A webhook is answered 202 only once its run is durable, so every request waits for a commit.
Under load many requests are ready in the same turn of the loop; each used to pay a commit of its
own (a WAL append of every page it touched). Here the first request of a turn schedules one
commit for the end of the turn, the others join it, and each is answered when it is done. A
lone request waits one extra turn of the loop, microseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from automations.records import RunRecord

__all__ = ["AcceptMany", "GroupCommit", "IntakePressure"]

#: Records runs durably in one commit, dispatches the new ones; returns ``(stored, is_new)`` each
#: (or an awaitable of that: the runner commits on its intake's store thread).
AcceptMany = Callable[
    [Sequence[tuple[RunRecord, str | None]]],
    list[tuple[RunRecord, bool]] | Awaitable[list[tuple[RunRecord, bool]]],
]

_Waiting = tuple[RunRecord, str | None, "asyncio.Future[tuple[RunRecord, bool]]"]


class GroupCommit:
    """``accept`` is the intake's callback; ``accept_many`` records a batch (``Runner``'s).

    One commit at a time: requests that arrive while one is being made (on the store's thread)
    wait for the next, which takes them all.
    """

    def __init__(self, accept_many: AcceptMany) -> None:
        self._accept_many = accept_many
        self._waiting: list[_Waiting] = []
        self._committing = False
        self._task: asyncio.Task[None] | None = None

    async def accept(self, run: RunRecord, order_key: str | None) -> tuple[RunRecord, bool]:
        """Record ``run`` with the others of this turn; returns once the commit is done."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[RunRecord, bool]] = loop.create_future()
        self._waiting.append((run, order_key, future))
        if len(self._waiting) == 1 and not self._committing:
            loop.call_soon(self._commit)
        return await future

    def _commit(self) -> None:
        if self._committing or not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        try:
            results = self._accept_many([(run, key) for run, key, _ in waiting])
        except Exception as exc:  # every request of the batch fails as it would have alone
            _fail(waiting, exc)
            self._next()
            return
        if isinstance(results, list):
            _deliver(waiting, results)
            self._next()
            return
        self._committing = True
        self._task = asyncio.get_running_loop().create_task(self._finish(waiting, results))

    async def _finish(
        self, waiting: list[_Waiting], pending: Awaitable[list[tuple[RunRecord, bool]]]
    ) -> None:
        try:
            results = await pending
        except Exception as exc:
            _fail(waiting, exc)
        else:
            _deliver(waiting, results)
        finally:
            self._committing = False
            self._next()

    def _next(self) -> None:
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._commit)


def _fail(waiting: list[_Waiting], exc: Exception) -> None:
    for _, _, future in waiting:
        if not future.done():
            future.set_exception(exc)


def _deliver(waiting: list[_Waiting], results: list[tuple[RunRecord, bool]]) -> None:
    for (_, _, future), result in zip(waiting, results, strict=True):
        # a request given up (client gone) still has its run recorded: a provider's retry
        # of it is then answered as a duplicate
        if not future.done():
            future.set_result(result)


class IntakePressure:
    """Gives the intake priority over execution during a burst of webhooks.

    Accepting an event (a durable insert and a 202) is cheap; executing it is several times
    dearer. While webhooks keep arriving, a run about to execute first waits for a quiet moment
    (``quiet_s`` without a webhook) or at most ``max_wait_s``, so a burst is recorded at the
    intake's pace and executed from the inbox right after; between bursts nothing waits.
    """

    def __init__(self, *, quiet_s: float = 0.001, max_wait_s: float = 0.05) -> None:
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self._last = float("-inf")

    def note(self) -> None:
        """A webhook came in."""
        self._last = time.monotonic()

    async def wait(self) -> None:
        """Return when the intake is quiet, or after ``max_wait_s``."""
        start = time.monotonic()
        while True:
            now = time.monotonic()
            quiet_at = self._last + self.quiet_s
            if now >= quiet_at or now - start >= self.max_wait_s:
                return
            # woken when this quiet moment would come, not polling
            await asyncio.sleep(min(quiet_at, start + self.max_wait_s) - now)
