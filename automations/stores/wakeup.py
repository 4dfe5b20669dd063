"""Wake-ups for a claim loop: a hint that runs wait unclaimed, never the mechanism itself.

A node's claim loop waits ``await wakeup.wait(1.0)`` between two looks at the store: the poll
every second is what guarantees that every pending run is found; a wake-up only shortens the
wait (from up to a second to about a millisecond). Losing a wake-up therefore costs at most one
poll interval, never a run.

- ``Wakeup``: in one process. ``set()`` (from any thread) wakes the waiter: the node's own intake
  or sources recorded a run it will not claim itself, a run was released.
- ``PostgresWakeup``: also ``LISTEN``s on ``CHANNEL`` on a connection of its own (outside the
  store's pool); every ``NOTIFY`` there sets it. ``PostgresStore.notify_pending`` sends one in the
  transaction that recorded runs no node claimed (delivered at commit, to every node, this one
  included). A dropped connection (a restarted server, a terminated backend, a network cut) is
  noticed within ``check_every_s`` at most (a ``SELECT 1`` when nothing came), logged once, and
  reconnected with a backoff (0.5 s doubling to 10 s); meanwhile the poll carries on alone, and
  the first wait after the reconnect returns at once (runs may have come meanwhile).

``wakeup_for(store, poll_only=...)`` picks one: the listener only on PostgreSQL and unless
``poll_only`` (``--poll-only`` / ``AUTOMATIONS_POLL_ONLY``): PgBouncer in transaction mode does
not keep a session's ``LISTEN``, so behind it a node polls only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any

from automations.ports import Store
from automations.stores import postgres_sql as sql

if TYPE_CHECKING:
    import psycopg

__all__ = ["CHANNEL", "PostgresWakeup", "Wakeup", "wakeup_for"]

log = logging.getLogger("automations.runner")

#: The channel runs waiting unclaimed are announced on.
CHANNEL = sql.CHANNEL

_BACKOFF_S = 0.5
_BACKOFF_MAX_S = 10.0


class Wakeup:
    """An awaitable hint: ``wait(timeout)`` returns as soon as ``set()`` was called (since the
    last wait returned), or after ``timeout`` seconds without one."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        #: How many times the waiter was woken (not counting timeouts): for tests and benches.
        self.woken = 0

    @property
    def listening(self) -> bool:
        """Whether wake-ups also come from other nodes (a live ``LISTEN``)."""
        return False

    async def start(self) -> None:
        """Bind to the running event loop (``set`` may then be called from any thread)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    async def aclose(self) -> None:
        """Stop listening (nothing to do in one process)."""

    def set(self) -> None:
        """Wake the waiter (now, or at its next ``wait``). Safe from any thread."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._thread:
            self._event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> None:
        """Return when woken (now, if woken since the last wait returned), or after ``timeout``
        seconds; ``woken`` counts the wake-ups. Several wake-ups before a wait count as one."""
        if not self._event.is_set():
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return
        self._event.clear()
        self.woken += 1


class PostgresWakeup(Wakeup):
    """A ``Wakeup`` that every ``NOTIFY`` on ``CHANNEL`` of the database at ``url`` sets.

    ``url`` may hold a password: it never reaches a message (``label`` is shown instead).
    """

    def __init__(
        self,
        url: str,
        *,
        label: str,
        check_every_s: float = 10.0,
        backoff_s: float = _BACKOFF_S,
        backoff_max_s: float = _BACKOFF_MAX_S,
        connect_timeout_s: int = 10,
    ) -> None:
        super().__init__()
        self._url = url
        self.label = label
        self.check_every_s = check_every_s
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._connect_timeout_s = connect_timeout_s
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        #: Whether the loss of the connection was logged (logged once per outage).
        self._lost = False
        #: How many times the listener (re)connected: for tests.
        self.connects = 0
        #: The server process of the current listening connection (``pg_backend_pid``).
        self.backend_pid: int | None = None

    @property
    def listening(self) -> bool:
        return self._listening

    async def start(self) -> None:
        await super().start()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._listen_forever(), name="wakeup-listener"
            )

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._listening = False

    async def wait_listening(self, timeout: float) -> bool:
        """Wait until the listener is connected (tests); ``True`` if it is."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._listening and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return self._listening

    async def _listen_forever(self) -> None:
        import psycopg  # imported on first use, as the store itself is

        from automations.stores.postgres import error_text

        backoff = self._backoff_s
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=self._connect_timeout_s,
                )
            except psycopg.Error as exc:
                if not self._lost:
                    log.warning(
                        "wake-ups: cannot listen on %s (%s); polling every second meanwhile, "
                        "trying again",
                        self.label,
                        error_text(exc, self._url),
                    )
                    self._lost = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)
                continue
            try:
                await self._serve(conn)
            except psycopg.Error as exc:
                log.warning(
                    "wake-ups: the listening connection to %s was lost (%s); polling every "
                    "second meanwhile, reconnecting",
                    self.label,
                    error_text(exc, self._url),
                )
                self._lost = True
                backoff = self._backoff_s
                await asyncio.sleep(backoff)
            finally:
                self._listening = False
                self.backend_pid = None
                await _close(conn)

    async def _serve(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(sql.LISTEN_PENDING)
        self.connects += 1
        self.backend_pid = conn.info.backend_pid
        self._listening = True
        if self._lost:
            self._lost = False
            log.info("wake-ups: listening on %s again", self.label)
        # runs may have been recorded while nobody listened here: look once
        self.set()
        while True:
            async for _ in conn.notifies(timeout=self.check_every_s):
                self.set()
            # quiet for a while: make sure the connection is still there (a cut one says
            # nothing until it is used)
            await conn.execute(sql.LISTENER_CHECK)


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error):  # already broken: nothing to close cleanly
        await conn.close()


def wakeup_for(store: Store, *, poll_only: bool = False) -> Wakeup:
    """The wake-up a runner on ``store`` uses: ``PostgresWakeup`` on PostgreSQL unless
    ``poll_only``, else a ``Wakeup`` of this process alone."""
    if poll_only or "automations.stores.postgres" not in sys.modules:
        return Wakeup()  # a PostgreSQL store has imported its module
    from automations.stores.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        return PostgresWakeup(store._dsn, label=store.url)
    return Wakeup()
