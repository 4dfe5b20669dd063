"""Real databases for the database table trigger tests: a SQLite file and a PostgreSQL schema.

``TestDatabase.url`` is what a recipe's ``database:`` holds; ``sql`` runs statements on a
connection of its own (committed at once), as the application that owns the table would.
The PostgreSQL one needs a server (``tests/postgres.py``: skipped locally without one, failed
under ``CI=true``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.postgres import fresh_schema

__all__ = ["KINDS", "TestDatabase", "open_database"]

KINDS = ("sqlite", "postgres")


class TestDatabase:
    __test__ = False  # not a test class

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self._conn: Any = None

    @property
    def ph(self) -> str:
        return "?" if self.kind == "sqlite" else "%s"

    def _connection(self) -> Any:
        if self._conn is None:
            if self.kind == "sqlite":
                self._conn = sqlite3.connect(
                    self.url, isolation_level=None, check_same_thread=False
                )
            else:
                import psycopg

                self._conn = psycopg.connect(self.url, autocommit=True)
        return self._conn

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders, whatever the database) and return its rows."""
        cur = self._connection().execute(statement.replace("?", self.ph), tuple(params))
        return list(cur.fetchall()) if cur.description else []

    def many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """``statement`` for each of ``rows``, in one transaction (a bulk append)."""
        conn = self._connection()
        statement = statement.replace("?", self.ph)
        if self.kind == "sqlite":
            with conn:
                conn.execute("BEGIN")
                conn.executemany(statement, rows)
        else:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(statement, rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextmanager
def open_database(kind: str, folder: Path) -> Iterator[TestDatabase]:
    """An empty database of ``kind``: a SQLite file in ``folder``, or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        db = TestDatabase(kind, str(folder / "crm.db"))
        db.sql("PRAGMA journal_mode = WAL")
        try:
            yield db
        finally:
            db.close()
        return
    with fresh_schema() as url:
        db = TestDatabase(kind, url)
        try:
            yield db
        finally:
            db.close()
