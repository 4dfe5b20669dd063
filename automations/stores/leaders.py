"""Leader leases (``Leaders``): which node does the work that needs doing once.

A lease is a row (name, owner, term, expires_at), never a session advisory lock: PgBouncer in
transaction mode does not keep a session's lock, a half-open connection keeps one until TCP
notices, and a lock has no term. The term grows by one at each change of owner, so
``(owner, term)`` names one leadership.

Correctness never rests on a lease: the runs a schedule or a table produces are unique by
``(recipe, event_key)``, so two nodes that both believe they lead (a stalled leader that has not
noticed yet) record each event once. The lease saves the work of doing it twice.

``MemoryLeaders`` serves one process (SQLite and memory stores: one runner owns the store, so it
always leads); ``PostgresLeaders`` keeps the rows in the ``leaders`` table, statements in
``postgres_sql``. ``leaders_for(store)`` picks one. Time is a parameter (``now``, unix seconds)
so expiry is tested without sleeping; by default the database server's clock decides.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from automations.ports import Leaders, Store
from automations.stores import postgres_sql as sql

if TYPE_CHECKING:
    from automations.stores.postgres import PostgresStore

__all__ = ["MemoryLeaders", "PostgresLeaders", "leaders_for"]


@dataclass(slots=True)
class _Lease:
    owner: str
    term: int
    expires_at: float


class MemoryLeaders(Leaders):
    """``Leaders`` in this process (thread-safe). ``clock`` is its clock (unix seconds)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._leases: dict[str, _Lease] = {}

    def acquire(
        self, name: str, owner: str, ttl_s: float, *, now: float | None = None
    ) -> int | None:
        t = self._clock() if now is None else now
        with self._lock:
            lease = self._leases.get(name)
            if lease is None:
                self._leases[name] = _Lease(owner, 1, t + ttl_s)
                return 1
            if lease.owner != owner and lease.expires_at > t:
                return None
            if lease.owner != owner:
                lease.owner, lease.term = owner, lease.term + 1
            lease.expires_at = t + ttl_s
            return lease.term

    def renew(
        self, name: str, owner: str, term: int, ttl_s: float, *, now: float | None = None
    ) -> bool:
        t = self._clock() if now is None else now
        with self._lock:
            lease = self._leases.get(name)
            if lease is None or (lease.owner, lease.term) != (owner, term):
                return False
            if lease.expires_at <= t:
                return False
            lease.expires_at = t + ttl_s
            return True

    def release(self, name: str, owner: str) -> bool:
        with self._lock:
            lease = self._leases.get(name)
            if lease is None or lease.owner != owner or lease.expires_at <= -1:
                return False
            lease.expires_at = -1
            return True

    def leader(self, name: str, *, now: float | None = None) -> tuple[str, int] | None:
        t = self._clock() if now is None else now
        with self._lock:
            lease = self._leases.get(name)
            if lease is None or lease.expires_at <= t:
                return None
            return lease.owner, lease.term


class PostgresLeaders(Leaders):
    """``Leaders`` in the ``leaders`` table of ``store``, shared by every node. Each call is one
    statement (blocking: call it off the event loop); ``StoreError`` when the database cannot be
    reached."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def acquire(
        self, name: str, owner: str, ttl_s: float, *, now: float | None = None
    ) -> int | None:
        params = {"name": name, "owner": owner, "ttl": ttl_s, "now": now}
        with self.store._cursor() as cur:
            row = cur.execute(sql.ACQUIRE_LEADER, params).fetchone()
        return None if row is None else int(row[0])

    def renew(
        self, name: str, owner: str, term: int, ttl_s: float, *, now: float | None = None
    ) -> bool:
        params = {"name": name, "owner": owner, "term": term, "ttl": ttl_s, "now": now}
        with self.store._cursor() as cur:
            cur.execute(sql.RENEW_LEADER, params)
            return cur.rowcount == 1

    def release(self, name: str, owner: str) -> bool:
        with self.store._cursor() as cur:
            cur.execute(sql.RELEASE_LEADER, {"name": name, "owner": owner})
            return cur.rowcount == 1

    def leader(self, name: str, *, now: float | None = None) -> tuple[str, int] | None:
        with self.store._cursor() as cur:
            row = cur.execute(sql.CURRENT_LEADER, {"name": name, "now": now}).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))


def leaders_for(store: Store) -> Leaders:
    """The leases a runner on ``store`` uses: ``PostgresLeaders`` on PostgreSQL, else
    ``MemoryLeaders`` (one runner owns the store: it always leads)."""
    if "automations.stores.postgres" in sys.modules:  # a PostgreSQL store imported it
        from automations.stores.postgres import PostgresStore

        if isinstance(store, PostgresStore):
            return PostgresLeaders(store)
    return MemoryLeaders()
