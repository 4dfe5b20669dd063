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
import functools
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
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def close(self) -> None:
        """Wait for the calls already made, then end the thread."""
        self._pool.shutdown(wait=True)
