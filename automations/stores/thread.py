"""Store calls off the event loop.

A store call can wait: SQLite waits up to its busy timeout for another process's lock
(``BEGIN EXCLUSIVE`` held by a backup tool), a full disk or a slow one stalls a commit, and a
page of a large backlog takes a while to read. Made on the event loop, any of these would freeze
everything the loop serves (``/healthz``, every webhook) for as long. ``StoreThread`` makes each
call on a thread of its own and lets the loop go on meanwhile; the caller alone waits.

One thread per ``StoreThread``, so its calls run one at a time, in order. The runner keeps two:
one for the webhook intake (its group commits never queue behind execution's writes) and one
for execution (claims, step writes, backlog pages, pruning). The SQLite store's connection is
shared by both, behind the store's lock; the event loop's thread never touches it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["StoreThread"]

T = TypeVar("T")


class StoreThread:
    """``await thread(fn, *args)`` runs ``fn(*args)`` on this object's thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        # A caller cancelled while waiting stops waiting; the call itself still completes (a
        # write is never cut in half), and ``close`` waits for it.
        # The thread settles an asyncio future itself: ``run_in_executor`` would chain a
        # concurrent future to it (twice the CPU per call, and several calls make each run).
        future: asyncio.Future[T] = loop.create_future()
        self._pool.submit(_call, loop, future, fn, args)
        return await future

    def close(self) -> None:
        """Wait for the calls already made, then end the thread."""
        self._pool.shutdown(wait=True)


def _call(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[T],
    fn: Callable[..., T],
    args: tuple[Any, ...],
) -> None:
    """On the store's thread: ``fn(*args)``, its result or error handed to ``future``."""
    try:
        result = fn(*args)
    except BaseException as exc:
        _settle(loop, future.set_exception, future, exc)
    else:
        _settle(loop, future.set_result, future, result)


def _settle(
    loop: asyncio.AbstractEventLoop,
    setter: Callable[[Any], None],
    future: asyncio.Future[Any],
    value: Any,
) -> None:
    def settle() -> None:
        if not future.done():  # its caller may have stopped waiting
            setter(value)

    # a loop closed meanwhile has no one left to tell
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle)
