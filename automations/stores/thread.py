"""Store calls off the event loop, and grouped commits.

A store call can wait: SQLite waits up to its busy timeout for another process's lock
(``BEGIN EXCLUSIVE`` held by a backup tool), a full disk or a slow one stalls a commit, and a
page of a large backlog takes a while to read. Made on the event loop, any of these would freeze
everything the loop serves (``/healthz``, every webhook) for as long. ``StoreThread`` makes each
call on a thread of its own and lets the loop go on meanwhile; the caller alone waits.

One thread per ``StoreThread``, so its calls run one at a time, in order. The runner keeps one
for execution (claims, step writes, backlog pages) and others for the in-process webhook intake,
the inbox's moves, pruning and the lead, so none queues behind another's work. The SQLite
store's connection is shared by all, behind the store's lock; the event loop's thread never
touches it.

**Grouped calls.** Executing runs make several small writes each (the claim, a ``sending`` mark
before a request leaves, the outcomes), and each was a commit of its own: most of a run's cost
on SQLite. ``grouped(fn, *args)`` lets calls that are already waiting for the thread commit
together: the thread takes the grouped calls queued behind the first (up to ``GROUP_MAX``, in
order; it never waits for more), makes them in one transaction of the ``group`` store, each in a
savepoint of its own, then commits once and only then answers each caller. So:

- a call's answer still means "durable": a ``sending`` mark is committed before its caller
  sends;
- a call that raises has its own writes undone (its savepoint) and its caller gets the error;
  the others of the group are not affected;
- when the commit fails, or the database ended the transaction by itself (a full disk), every
  caller of the group gets the error: none of their writes is durable.

A lone call is one transaction, as before: grouping costs nothing when there is no queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from automations.errors import StoreError

__all__ = ["GROUP_MAX", "Groupable", "StoreThread"]

T = TypeVar("T")

#: Calls committed together at most.
GROUP_MAX = 64


@runtime_checkable
class Groupable(Protocol):
    """A store that can make several calls in one transaction, each undone alone on error."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def savepoint(self) -> AbstractContextManager[None]: ...


@dataclass(slots=True)
class _Call:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    grouped: bool


class StoreThread:
    """``await thread(fn, *args)`` runs ``fn(*args)`` on this object's thread;
    ``await thread.grouped(fn, *args)`` may commit it with others (see the module's text)."""

    def __init__(self, name: str, *, group: Groupable | None = None) -> None:
        self.name = name
        self._group = group
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(fn, args, grouped=False)

    async def grouped(self, fn: Callable[..., T], *args: Any) -> T:
        """As a call, but committed with the grouped calls queued with it (when this thread
        has a ``group`` store; a plain call otherwise)."""
        return await self._submit(fn, args, grouped=self._group is not None)

    async def _submit(self, fn: Callable[..., T], args: tuple[Any, ...], *, grouped: bool) -> T:
        loop = asyncio.get_running_loop()
        # A caller cancelled while waiting stops waiting; the call itself still completes (a
        # write is never cut in half), and ``close`` waits for it.
        future: asyncio.Future[T] = loop.create_future()
        self._put(_Call(loop, future, fn, args, grouped))
        return await future

    def _put(self, call: _Call) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: closed")
            if self._thread is None:  # started with the first call
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put(call)

    def close(self) -> None:
        """Wait for the calls already made, then end the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(None)  # after every call made
        if thread is not None:
            thread.join()

    # -- on the thread -------------------------------------------------------------------------

    def _work(self) -> None:
        carried: _Call | None = None
        while True:
            call = carried if carried is not None else self._queue.get()
            carried = None
            if call is None:
                return
            if not call.grouped or self._group is None:
                _settle_all([_outcome(call)])
                continue
            calls, stop = [call], False
            while len(calls) < GROUP_MAX:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is not None and nxt.grouped:
                    calls.append(nxt)
                    continue
                stop, carried = nxt is None, nxt  # made after the group, in order
                break
            _settle_all(_group(self._group, calls) if len(calls) > 1 else [_outcome(call)])
            if stop:
                return


_Outcome = tuple[_Call, bool, Any]


def _outcome(call: _Call) -> _Outcome:
    try:
        return call, True, call.fn(*call.args)
    except BaseException as exc:
        return call, False, exc


class _Broken(Exception):
    """The group's transaction cannot go on (the database ended it, a savepoint failed)."""


def _group(group: Groupable, calls: list[_Call]) -> list[_Outcome]:
    """``calls`` in one transaction, each in a savepoint; answered only once committed."""
    done: list[_Outcome] = []
    try:
        with group.transaction():
            for call in calls:
                own: list[BaseException] = []
                try:
                    with group.savepoint():
                        try:
                            value = call.fn(*call.args)
                        except BaseException as exc:
                            own.append(exc)
                            raise
                except BaseException as exc:
                    if not own or exc is not own[0]:
                        raise _Broken(str(exc)) from exc
                    done.append((call, False, exc))
                else:
                    done.append((call, True, value))
    except BaseException as exc:
        # nothing of the group is durable: every caller learns it
        why = exc.__cause__ if isinstance(exc, _Broken) and exc.__cause__ else exc
        error = why if isinstance(why, StoreError) else StoreError(f"store write failed: {why}")
        return [(call, False, error) for call in calls]
    return done


def _settle_all(outcomes: list[_Outcome]) -> None:
    """Hand each outcome to its caller: one wake-up of each event loop for all of them."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, mine in by_loop.items():
        # a loop closed meanwhile has no one left to tell
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, mine)


def _settle(outcomes: list[_Outcome]) -> None:
    for call, ok, value in outcomes:
        future = call.future
        if future.done():  # its caller may have stopped waiting
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
