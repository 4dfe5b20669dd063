"""The slot book of each provider key (``RateGate``): in one process, or in PostgreSQL for every
node sharing a store.

``MemoryRateGate`` keeps the book in this process (tests, and the contract both must meet).
``PostgresRateGate`` keeps one row per key in the ``rate_limits`` table of a ``PostgresStore``;
its statements, and why one statement per reservation is enough, are in ``postgres_sql``.
``rate_gate_for(store)`` gives the gate a runner on ``store`` paces through, or ``None`` where
one process owns the store (SQLite, memory): then each process paces alone, as before.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from automations.ports import RateGate, Store
from automations.stores import postgres_sql as sql

if TYPE_CHECKING:
    from automations.stores.postgres import PostgresStore

__all__ = ["MemoryRateGate", "PostgresRateGate", "rate_gate_for"]


class MemoryRateGate(RateGate):
    """A ``RateGate`` in this process (thread-safe). ``clock`` is its clock (unix seconds)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._books: dict[str, _Book] = {}

    def reserve(
        self, key: str, interval_s: float, count: int, *, now: float | None = None
    ) -> tuple[float, int]:
        t = self._clock() if now is None else now
        with self._lock:
            book = self._books.setdefault(key, _Book(t))
            slot = max(book.tat, t)
            if len(book.recent) >= count:
                slot = max(slot, book.recent[-count] + count * interval_s)
            book.tat = slot + interval_s
            book.seq += 1
            book.recent = [*book.recent, slot][-count:]
            return slot - t, book.seq

    def report_late(self, key: str, number: int, late_s: float) -> None:
        with self._lock:
            book = self._books.get(key)
            if book is None or number > book.seq or book.seq - number >= len(book.recent):
                return
            book.recent[len(book.recent) - 1 - (book.seq - number)] += max(0.0, late_s)

    def hold(self, key: str, seconds: float, *, now: float | None = None) -> None:
        t = self._clock() if now is None else now
        with self._lock:
            book = self._books.setdefault(key, _Book(t))
            book.tat = max(book.tat, t + max(0.0, seconds))


@dataclass(slots=True)
class _Book:
    tat: float
    seq: int = 0
    recent: list[float] = field(default_factory=list)


class PostgresRateGate(RateGate):
    """A ``RateGate`` in the ``rate_limits`` table of ``store``: one row per key, shared by every
    node. Each call is one statement on a pooled connection (blocking: call it off the event
    loop). A database that cannot be reached raises ``StoreError``."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def reserve(
        self, key: str, interval_s: float, count: int, *, now: float | None = None
    ) -> tuple[float, int]:
        params = {"key": key, "interval": interval_s, "count": count, "now": now}
        with self.store._cursor() as cur:
            row = cur.execute(sql.RESERVE_SLOT, params).fetchone()
        assert row is not None  # an upsert always returns its row
        return max(0.0, float(row[0])), int(row[1])

    def report_late(self, key: str, number: int, late_s: float) -> None:
        params = {"key": key, "number": number, "late": max(0.0, late_s)}
        with self.store._cursor() as cur:
            cur.execute(sql.REPORT_LATE, params)

    def hold(self, key: str, seconds: float, *, now: float | None = None) -> None:
        params = {"key": key, "hold": max(0.0, seconds), "now": now}
        with self.store._cursor() as cur:
            cur.execute(sql.HOLD_SLOTS, params)


def rate_gate_for(store: Store) -> RateGate | None:
    """The gate every node on ``store`` paces through: ``PostgresRateGate`` on PostgreSQL;
    ``None`` for a store one process owns (it paces on its own)."""
    if "automations.stores.postgres" not in sys.modules:
        return None  # a PostgreSQL store has imported its module
    from automations.stores.postgres import PostgresStore

    return PostgresRateGate(store) if isinstance(store, PostgresStore) else None
