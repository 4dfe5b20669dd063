"""Database tables: a SQLite file or a PostgreSQL database, read in batches and written back by key.

``trigger.table.database`` names the database as the recipe writes it: a SQLite file (relative to
the recipe's folder; inside the recipes directory, like a table file) or a ``postgresql://`` URL.
``${NAME}`` parts are secrets: substituted only here, when connecting. Everything shown (errors,
logs, ``/healthz``, the audit) names the database by ``shown_database``: the text as written, a
literal password replaced by ``***``; every message from a driver is passed through a redactor of
the substituted values and the password before it leaves this module.

``TableConnection`` is the one place with SQL for database tables (both dialects): it reads a
table or a query's result (as a subquery) in key order or in ``changed_by`` order, a bounded
batch per statement (each its own short transaction: a writer is never held up for the length of
a scan), and writes ``write_back`` values into one row by key in one ``UPDATE``. Values come back
as JSON values (see ``json_value``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import json
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from automations.errors import TableDatabaseError
from automations.redact import Redactor

__all__ = [
    "NOTIFY_CHANNEL",
    "Database",
    "TableConnection",
    "connect",
    "is_postgres_url",
    "json_value",
    "notify_sql",
    "resolve_database",
    "shown_database",
]

#: The channel ``automations db notify-sql`` triggers notify on (the payload: the table's name).
NOTIFY_CHANNEL = "automations_tables"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BUSY_MS = 5000
#: Seconds a PostgreSQL connection attempt may take.
CONNECT_TIMEOUT_S = 10


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def env_names(text: str) -> frozenset[str]:
    """The ``${NAME}`` variables in ``text``."""
    return frozenset(_ENV.findall(text))


def shown_database(text: str) -> str:
    """``text`` as messages show it: ``${NAME}`` kept, a literal password replaced by ``***``."""
    if not is_postgres_url(text):
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        password = None
    if password is None or _ENV.fullmatch(password):
        return text
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{netloc[1]}").geturl()


@dataclass(frozen=True, slots=True)
class Database:
    """A database resolved for connecting. ``target`` may hold secrets: only ``shown`` and
    ``redactor``-cleaned text may leave the process."""

    kind: str  # "sqlite" | "postgres"
    target: str = field(repr=False)
    shown: str
    redactor: Redactor = field(repr=False, compare=False)

    def problem(self, exc: BaseException) -> str:
        """``exc`` as a message that names no secret."""
        return self.redactor.text(str(exc).strip() or type(exc).__name__)


def resolve_database(text: str, env: Mapping[str, str]) -> Database:
    """``text`` (as compiled: a SQLite path made absolute, or a URL) with ``${NAME}`` substituted
    from ``env``. ``TableDatabaseError`` when a variable is not set."""
    shown = shown_database(text)
    secrets: dict[str, str] = {}
    missing = sorted(n for n in env_names(text) if n not in env)
    if missing:
        raise TableDatabaseError(
            f"database {shown}: environment variable {', '.join(missing)} is not set; set it "
            "before the runner starts"
        )
    for name in env_names(text):
        secrets[name] = env[name]
    target = _ENV.sub(lambda m: env[m.group(1)], text)
    if is_postgres_url(target):
        try:
            password = urlsplit(target).password
        except ValueError:
            password = None
        if password:
            # the redactor masks each value in its percent-encoded forms too
            secrets[""] = unquote(password)
        return Database("postgres", target, shown, Redactor(secrets, min_len=1))
    return Database("sqlite", target, shown, Redactor(secrets, min_len=1))


def json_value(value: Any) -> Any:
    """A database value as a JSON value (what a row holds): times as ISO 8601 text, decimals as
    numbers, UUIDs as text, bytes as base64 text, JSON columns as they are."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_sql(table: str) -> str:
    """``schema.table`` or ``table``, each part quoted (a name with a dot in it: write it as
    ``"my.table"`` in the recipe)."""
    if table.startswith('"') and table.endswith('"'):
        return table
    return ".".join(quote_identifier(part) for part in table.split("."))


class TableConnection:
    """One connection to a database for one table (or query), used from one thread at a time.

    Reads are one statement each (autocommit): ``columns``, ``by_key``, ``by_cursor``;
    ``write_back`` is one ``UPDATE``. Errors are ``TableDatabaseError`` with secret-free text."""

    def __init__(
        self, db: Database, *, table: str | None, query: str | None, writable: bool = False
    ) -> None:
        self.db = db
        self.table = table
        self.query = query
        self._writable = writable
        self._conn: Any = None
        self._ph = "?" if db.kind == "sqlite" else "%s"
        if table is not None:
            self._source = _table_sql(table)
        else:
            text = (query or "").strip().rstrip(";")
            if db.kind == "postgres":  # psycopg reads % as a placeholder when there are params
                text = text.replace("%", "%%")
            self._source = f"({text}) AS automations_src"
        self.name = table if table is not None else "the query"

    # -- connecting --------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        db = self.db
        conn: Any
        try:
            if db.kind == "sqlite":
                if not os.path.isfile(db.target):
                    raise TableDatabaseError(
                        f"database {db.shown} does not exist (a SQLite file; check the path)"
                    )
                mode = "rw" if self._writable else "ro"
                uri = Path(db.target).absolute().as_uri() + f"?mode={mode}"
                # one thread at a time, but not always the same one (looks run on worker threads)
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    isolation_level=None,
                    timeout=_BUSY_MS / 1e3,
                    check_same_thread=False,
                )
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            else:
                import psycopg

                conn = psycopg.connect(
                    db.target, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                )
        except TableDatabaseError:
            raise
        except Exception as exc:
            raise TableDatabaseError(
                f"cannot open database {db.shown}: {db.problem(exc)}"
            ) from None
        self._conn = conn
        return conn

    def open(self) -> None:
        """Connect now (``TableDatabaseError`` when the database cannot be opened)."""
        self._connect()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing more to do
                conn.close()

    @contextmanager
    def _statement(self, what: str) -> Iterator[Any]:
        conn = self._connect()
        try:
            yield conn
        except TableDatabaseError:
            raise
        except Exception as exc:
            broken = self.db.kind == "postgres" and getattr(conn, "closed", False)
            if broken or isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
                self.close()  # a new connection on the next call
            raise TableDatabaseError(
                f"{what} in database {self.db.shown}: {self.db.problem(exc)}"
            ) from None

    def _rows(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._statement(f"cannot read {self.name}") as conn:
            cur = conn.execute(sql, tuple(params))
            names = [d[0] for d in cur.description or ()]
            return names, cur.fetchall()

    # -- reading -----------------------------------------------------------------------------

    def columns(self) -> list[str]:
        """The column names of the table (or the query's result)."""
        names, _ = self._rows(f"SELECT * FROM {self._source} LIMIT 0", ())
        return names

    def by_key(self, key: str, after: Any, limit: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Up to ``limit`` rows in key order, after the key ``after`` (from the first: ``None``)."""
        k = quote_identifier(key)
        where = "" if after is None else f" WHERE {k} > {self._ph}"
        params: list[Any] = [] if after is None else [after]
        sql = f"SELECT * FROM {self._source}{where} ORDER BY {k} LIMIT {int(limit)}"
        return self._rows(sql, params)

    def by_cursor(
        self, column: str, key: str, after: tuple[Any, Any] | None, limit: int, *, inclusive: bool
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Up to ``limit`` rows in ``(column, key)`` order after ``after``: with ``inclusive``,
        every row whose ``column`` is at least ``after``'s (rows sharing that value are read
        again: one committed later with a smaller key is not lost); else strictly after the pair.
        Rows whose ``column`` is null are never read this way."""
        c, k, ph = quote_identifier(column), quote_identifier(key), self._ph
        params: list[Any] = []
        if after is None:
            where = f" WHERE {c} IS NOT NULL"
        elif inclusive:
            where = f" WHERE {c} >= {ph}"
            params = [after[0]]
        else:
            where = f" WHERE ({c} > {ph} OR ({c} = {ph} AND {k} > {ph}))"
            params = [after[0], after[0], after[1]]
        sql = f"SELECT * FROM {self._source}{where} ORDER BY {c}, {k} LIMIT {int(limit)}"
        return self._rows(sql, params)

    def find(self, key: str, value: str) -> dict[str, Any] | None:
        """The row whose key (as text) is ``value``; ``None`` when none is."""
        k = quote_identifier(key)
        cast = "CAST({} AS TEXT)" if self.db.kind == "sqlite" else "{}::text"
        sql = f"SELECT * FROM {self._source} WHERE {cast.format(k)} = {self._ph} LIMIT 1"
        names, rows = self._rows(sql, [value])
        if not rows:
            return None
        return {n: json_value(v) for n, v in zip(names, rows[0], strict=True)}

    # -- writing back ------------------------------------------------------------------------

    def write_back(self, key: str, key_value: Any, values: Mapping[str, Any]) -> int:
        """Set ``values`` in the row(s) whose ``key`` is ``key_value``, in one ``UPDATE``;
        returns how many rows it changed. Only a ``table`` can be written."""
        if self.table is None:
            raise TableDatabaseError("write_back needs trigger.table.table (a query is read-only)")
        sets = ", ".join(f"{quote_identifier(c)} = {self._ph}" for c in values)
        sql = f"UPDATE {self._source} SET {sets} WHERE {quote_identifier(key)} = {self._ph}"
        params = [_db_value(v) for v in values.values()] + [key_value]
        with self._statement(f"cannot write back into {self.name}") as conn:
            return int(conn.execute(sql, tuple(params)).rowcount)


def _db_value(value: Any) -> Any:
    """A rendered ``write_back`` value as a parameter: objects and lists as JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def connect(
    text: str,
    env: Mapping[str, str],
    *,
    table: str | None,
    query: str | None,
    writable: bool = False,
) -> TableConnection:
    """A (lazily opened) connection to the database ``text`` names."""
    return TableConnection(resolve_database(text, env), table=table, query=query, writable=writable)


class WriterPool:
    """Write connections shared by the runs of a process, one per (database, table), each used
    by one thread at a time (a lock per connection)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: dict[tuple[str, str], tuple[threading.Lock, TableConnection]] = {}

    @contextmanager
    def connection(
        self, text: str, env: Mapping[str, str], table: str
    ) -> Iterator[TableConnection]:
        db = resolve_database(text, env)
        with self._lock:
            found = self._conns.get((db.target, table))
            if found is None:
                found = (
                    threading.Lock(),
                    TableConnection(db, table=table, query=None, writable=True),
                )
                self._conns[(db.target, table)] = found
        lock, conn = found
        with lock:
            yield conn

    def close(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for _, conn in conns:
            conn.close()


def notify_sql(table: str) -> str:
    """The PostgreSQL trigger function and trigger that wake a runner watching ``table``:
    ``NOTIFY automations_tables`` with the table's name, once per statement that inserts or
    updates rows."""
    quoted = _table_sql(table)
    bare = re.sub(r"[^A-Za-z0-9_]", "_", table.replace('"', ""))[:40]
    function = f"automations_notify_{bare}"
    return f"""\
-- Wakes automations runners watching {table} as soon as rows are inserted or updated
-- (polling still runs: this only makes changes noticed sooner). Run it once, as the table's owner.
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{NOTIFY_CHANNEL}', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS automations_notify ON {quoted};
CREATE TRIGGER automations_notify
  AFTER INSERT OR UPDATE ON {quoted}
  FOR EACH STATEMENT EXECUTE FUNCTION {function}();
"""
