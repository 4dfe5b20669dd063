"""The run store and trigger state in PostgreSQL: the store several machines can share.

Chosen by a ``postgresql://`` (or ``postgres://``) URL wherever a run database is named
(``--db``, ``AUTOMATIONS_DB``); the URL is libpq's, so ``?host=/run/postgresql``,
``sslmode=...`` and ``options=-csearch_path%3Dautomations`` work as in ``psql``.

Its statements are in ``postgres_sql``; its rows have the SQLite store's columns and are read
by the same codec, so the two stores return identical records (one contract suite runs over
both).

Durability: a method's write is committed when it returns (with the server's default
``synchronous_commit = on``, flushed to the server's WAL). ``transaction()`` groups writes into
one commit.

Connections: a small pool (``psycopg_pool``), ``autocommit`` on; a method that writes more than
one statement wraps them in a transaction. Calls block their thread: the runner makes them on
its store threads (``stores/thread.py``), never on the event loop. A connection broken by a
server restart fails the call that meets it (``StoreError``; the runner writes again) and the
pool replaces it.

Concurrency: a read of a run inside ``transaction()`` locks its row (``FOR UPDATE``) until the
commit, so a read-check-write block (replay, resolve) from two processes at once runs one after
the other, as SQLite's ``BEGIN IMMEDIATE`` makes it. Several runners share this store: they
claim runs with leases (``leases.py``, the rules beside their SQL in ``postgres_sql``).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from automations.errors import StoreError
from automations.ports import Lease, Store, check_end_hold
from automations.records import (
    AuditEntry,
    RunFilter,
    RunPage,
    RunRecord,
    RunStatus,
    StepRecord,
)
from automations.stores import postgres_sql as sql
from automations.stores.codec import check_run_changes, column_filters, normalize_run
from automations.stores.leases import PostgresClaims
from automations.stores.sqlite_schema import (
    audit_from_row,
    audit_params,
    run_column_value,
    run_from_row,
    run_params,
    step_params,
    stored_run,
)

__all__ = ["PostgresStore", "error_text", "masked_url", "migrate"]

_KEEP_FAILED = ("failed", "unknown")
_KEEP_SUCCEEDED = [s.value for s in RunStatus if s.is_final and s.value not in _KEEP_FAILED]
#: Runs deleted per commit when pruning.
PRUNE_BATCH = 5000
#: Where ``created_at`` is in a row of ``RUN_SELECT``.
_CREATED_AT = 1 + sql.RUN_COLUMNS.replace(" ", "").split(",").index("created_at")


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: what messages and logs show."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL one can parse: show no user part at all
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url
    if password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def migrate(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Create the schema in a new database, or bring an older one up to ``SCHEMA_VERSION``.
    Returns the versions before and after. ``conn`` is in autocommit mode.

    Safe when several processes start at once: the work is done in one transaction holding the
    migration lock, which re-reads the version once it has the lock.
    """
    before = _version(conn)
    if before > sql.SCHEMA_VERSION:
        raise StoreError(
            f"the database has run store schema version {before}; this version of "
            f"automations reads up to {sql.SCHEMA_VERSION}"
        )
    if before == sql.SCHEMA_VERSION:
        return before, before
    with conn.transaction():
        conn.execute(sql.TAKE_MIGRATION_LOCK, (sql.MIGRATION_LOCK,))
        conn.execute(sql.CREATE_VERSION_TABLE)
        # Another process may have migrated while this one waited for the lock.
        before = int(conn.execute(sql.CURRENT_VERSION).fetchone()[0])  # type: ignore[index]
        for version in range(before, sql.SCHEMA_VERSION):
            for statement in sql.MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(sql.RECORD_VERSION, (version + 1,))
    return before, sql.SCHEMA_VERSION


def _version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(sql.HAS_VERSION_TABLE).fetchone()
    if row is None or not row[0]:
        return 0
    row = conn.execute(sql.CURRENT_VERSION).fetchone()
    return 0 if row is None else int(row[0])


class PostgresStore(PostgresClaims, Store):
    """``RunStore`` and ``StateStore`` in the PostgreSQL database at ``url`` (its schema is
    created or upgraded on open). ``clock`` gives the time ``claim`` records as ``started_at``;
    ``pool_size`` bounds the connections this process opens."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        pool_size: int = 4,
        connect_timeout_s: int = 10,
        application_name: str = "automations",
    ) -> None:
        self.url = masked_url(url)
        self._clock = clock
        self._local = threading.local()
        try:
            params = conninfo_to_dict(url)
            # a connect_timeout in the URL wins over the default
            given = params.get("connect_timeout")
            connect_timeout_s = int(given) if given is not None else connect_timeout_s
        except (psycopg.Error, ValueError, TypeError) as exc:
            raise StoreError(f"cannot open run store {self.url}: {error_text(exc, url)}") from exc
        # every connection of this process says who it is in pg_stat_activity (a runner:
        # ``automations:<node>``), unless the URL or PGAPPNAME names it already
        if "application_name" not in params and not os.environ.get("PGAPPNAME"):
            url += ("&" if "?" in url else "?") + "application_name=" + quote(application_name)
        self._dsn = url
        #: What this store's connections show as ``application_name``.
        self.application_name = str(
            params.get("application_name") or os.environ.get("PGAPPNAME") or application_name
        )
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout_s) as conn:
                migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot open run store {self.url}: {error_text(exc, self._dsn)}"
            ) from exc
        self._connect_timeout_s = connect_timeout_s
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout_s},
            timeout=float(connect_timeout_s),
            name="automations-store",
            open=True,
        )

    # -- connections ---------------------------------------------------------------------------

    @contextmanager
    def _cursor(self, *, atomic: bool = False) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor on this thread's transaction if it is in one, else on a pooled connection
        (in a transaction of its own when ``atomic``). psycopg's errors become ``StoreError``."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        try:
            if conn is not None:
                with conn.cursor() as cur:
                    yield cur
                return
            with self._pool.connection() as conn:
                if atomic:
                    with conn.transaction(), conn.cursor() as cur:
                        yield cur
                else:
                    with conn.cursor() as cur:
                        yield cur
        except psycopg.Error as exc:
            raise StoreError(f"run store {self.url}: {error_text(exc, self._dsn)}") from exc
        except PoolTimeout as exc:
            raise StoreError(f"run store {self.url}: no connection: {exc}") from exc

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose writes (from this thread) commit together, once, when it ends; an
        exception leaving it rolls them back. A nested block joins the outermost one. Runs read
        with ``get_run``/``find_run`` inside stay locked until the end. Writes are durable when
        the block exits: never send a request that relies on "written before sent" inside."""
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        try:
            with self._pool.connection() as conn, conn.transaction():
                self._local.conn = conn
                try:
                    yield
                finally:
                    self._local.conn = None
        except psycopg.Error as exc:
            raise StoreError(f"run store {self.url}: {error_text(exc, self._dsn)}") from exc
        except PoolTimeout as exc:
            raise StoreError(f"run store {self.url}: no connection: {exc}") from exc

    def notify_pending(self) -> None:
        with self._cursor() as cur:
            cur.execute(sql.NOTIFY_PENDING)

    # -- RunStore ------------------------------------------------------------------------------

    def enqueue(self, run: RunRecord) -> tuple[RunRecord, bool]:
        with self._cursor(atomic=bool(run.steps)) as cur:
            return self._enqueue(cur, run)

    def enqueue_many(self, runs: Sequence[RunRecord]) -> list[tuple[RunRecord, bool]]:
        with self._cursor(atomic=len(runs) > 1 or any(r.steps for r in runs)) as cur:
            return [self._enqueue(cur, run) for run in runs]

    def _enqueue(self, cur: psycopg.Cursor[Any], run: RunRecord) -> tuple[RunRecord, bool]:
        params = run_params(run)
        try:
            inserted = cur.execute(sql.INSERT_RUN, params).fetchone()
        except pg_errors.UniqueViolation as exc:
            raise StoreError(f"a run with id {run.id} exists already") from exc
        if inserted is None:
            existing = self._select_one(cur, sql.RUN_BY_EVENT, (run.recipe, run.event_key))
            assert existing is not None  # the insert conflicted with it
            return existing, False
        if not run.steps:
            return stored_run(run, params), True
        stored = normalize_run(run)
        for step in stored.steps:
            self._put_step(cur, step)
        return stored, True

    def claim(
        self, run_id: str, recipe_hash: str, *, lease: Lease | None = None, **fields: object
    ) -> RunRecord | None:
        changes = check_run_changes(fields)
        extra = "".join(f', "{name}" = %s' for name in changes)
        values = [run_column_value(name, value) for name, value in changes.items()]
        # with a lease, fenced: only while the run is running under it
        fence, fenced = (
            (sql.CLAIM_FENCE, (lease.owner, lease.token)) if lease is not None else ("", ())
        )
        with self._cursor() as cur:
            row = cur.execute(
                sql.CLAIM_RUN_FOR.format(extra=extra, fence=fence),
                (recipe_hash, self._clock(), *values, run_id, *fenced),
            ).fetchone()
            if row is None:
                if cur.execute(sql.RUN_EXISTS, (run_id,)).fetchone() is None:
                    raise StoreError(f"no run with id {run_id}")
                return None
            # a fresh run has no steps: they are read only for a resumed or replayed one
            steps = cur.execute(sql.STEPS_OF_RUN, (row[0],)).fetchall() if row[-1] else []
        return run_from_row(row[:-1], steps)

    def unfinished(self) -> list[RunRecord]:
        with self._cursor() as cur:
            return self._select(cur, sql.UNFINISHED, ())

    def unfinished_after(self, recipe: str, after: str | None, limit: int) -> list[RunRecord]:
        with self._cursor() as cur:
            rows = cur.execute(sql.UNFINISHED_AFTER, (recipe, after, limit)).fetchall()
        return [run_from_row(row, ()) for row in rows]

    def unfinished_counts(self) -> dict[str, int]:
        with self._cursor() as cur:
            rows = cur.execute(sql.UNFINISHED_COUNTS).fetchall()
        return {str(recipe): int(n) for recipe, n in rows}

    def update_run(self, run_id: str, **fields: object) -> None:
        changes = check_run_changes(fields)
        assignments = ", ".join(f'"{name}" = %s' for name in changes) or "id = id"
        values = [run_column_value(name, value) for name, value in changes.items()]
        with self._cursor() as cur:
            cur.execute(sql.UPDATE_RUN.format(assignments=assignments), (*values, run_id))
            updated = cur.rowcount
        if not updated:
            raise StoreError(f"no run with id {run_id}")

    def put_step(self, step: StepRecord) -> None:
        with self._cursor() as cur:
            self._put_step(cur, step)

    def _put_step(self, cur: psycopg.Cursor[Any], step: StepRecord) -> None:
        cur.execute(sql.PUT_STEP, (*step_params(step), step.run_id))
        if not cur.rowcount:
            raise StoreError(f"no run with id {step.run_id}")

    def get_run(self, run_id: str) -> RunRecord:
        locked = getattr(self._local, "conn", None) is not None
        by_id = sql.RUN_BY_ID_LOCKED if locked else sql.RUN_BY_ID
        with self._cursor() as cur:
            run = self._select_one(cur, by_id, (run_id,))
            if run is not None:
                return run
            if run_id:
                rows = cur.execute(sql.IDS_FROM_PREFIX, (run_id,)).fetchall()
                found = [r[0] for r in rows if r[0].startswith(run_id)]
                if len(found) > 1:
                    raise StoreError(f"ambiguous run id prefix {run_id}")
                if found:
                    run = self._select_one(cur, by_id, (found[0],))
                    assert run is not None
                    return run
        raise StoreError(f"no run with id {run_id}")

    def find_run(self, recipe: str, event_key: str) -> RunRecord | None:
        locked = getattr(self._local, "conn", None) is not None
        with self._cursor() as cur:
            return self._select_one(
                cur, sql.RUN_BY_EVENT_LOCKED if locked else sql.RUN_BY_EVENT, (recipe, event_key)
            )

    def list_runs_page(self, flt: RunFilter) -> RunPage:
        if flt.limit <= 0:
            return RunPage([], None)
        where, params = _filter_sql(flt)
        with self._cursor() as cur:
            # one more than asked: whether there is a next page, without counting
            rows = cur.execute(
                sql.LIST_RUNS.format(where=where), (*params, flt.limit + 1)
            ).fetchall()
            more = len(rows) > flt.limit
            del rows[flt.limit :]
            runs = self._with_steps(cur, rows)
        return RunPage(runs, (rows[-1][_CREATED_AT], rows[-1][0]) if more else None)

    def count(self, status: RunStatus | None = None) -> int:
        where, params = _filter_sql(RunFilter(status=status))
        with self._cursor() as cur:
            row = cur.execute(sql.COUNT_RUNS.format(where=where), params).fetchone()
        return int(row[0]) if row else 0

    def prune(self, *, now: float, keep_succeeded_s: float, keep_failed_s: float) -> int:
        params = {
            "failed_before": now - keep_failed_s,
            "succeeded_statuses": _KEEP_SUCCEEDED,
            "succeeded_before": now - keep_succeeded_s,
        }
        removed = 0
        while True:  # in batches, each its own commit: no transaction holds a million rows
            with self._cursor(atomic=True) as cur:
                cur.execute(sql.PRUNE_BATCH, {**params, "batch": PRUNE_BATCH})
                batch = int(cur.rowcount)
            removed += batch
            if batch < PRUNE_BATCH:
                return removed

    def end_hold(
        self, recipe: str, status: RunStatus, *, now: float, error: str | None = None
    ) -> int:
        check_end_hold(status)
        final = status is RunStatus.DISCARDED
        params = {"status": status.value, "final": final, "error": error, "now": now}
        with self._cursor() as cur:
            cur.execute(sql.END_HOLD, {**params, "recipe": recipe})
            return int(cur.rowcount)

    def steps_done_since(self, since: float) -> list[tuple[str, str, str, float]]:
        with self._cursor() as cur:
            rows = cur.execute(sql.STEPS_DONE_SINCE, (since,)).fetchall()
        return [(str(a), str(b), str(c), float(d)) for a, b, c, d in rows]

    def count_by_recipe(self, status: RunStatus) -> dict[str, int]:
        with self._cursor() as cur:
            rows = cur.execute(sql.COUNT_BY_RECIPE, (status.value,)).fetchall()
        return {str(recipe): int(n) for recipe, n in rows}

    def add_audit(self, entry: AuditEntry) -> None:
        with self._cursor() as cur:
            cur.execute(sql.INSERT_AUDIT, audit_params(entry))

    def audit_log(self, run_id: str | None = None, *, limit: int = 100) -> list[AuditEntry]:
        where, params = ("run_id = %s", [run_id]) if run_id is not None else ("TRUE", [])
        with self._cursor() as cur:
            rows = cur.execute(
                sql.AUDIT_LOG.format(where=where), (*params, max(limit, 0))
            ).fetchall()
        return [audit_from_row(row) for row in rows]

    def close(self) -> None:
        self._pool.close()

    # -- StateStore ----------------------------------------------------------------------------

    def get_state(self, scope: str, key: str) -> str | None:
        with self._cursor() as cur:
            row = cur.execute(sql.GET_STATE, (scope, key)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, scope: str, items: Iterable[tuple[str, str]]) -> None:
        values = [(scope, key, value) for key, value in items]
        if values:
            with self._cursor(atomic=True) as cur:
                cur.executemany(sql.SET_STATE, values)

    def get_states(self, scope: str, keys: Sequence[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        with self._cursor() as cur:
            rows = cur.execute(sql.GET_STATES, (scope, unique)).fetchall()
        return {str(k): str(v) for k, v in rows}

    def all_state(self, scope: str) -> dict[str, str]:
        with self._cursor() as cur:
            rows = cur.execute(sql.ALL_STATE, (scope,)).fetchall()
        return {str(k): str(v) for k, v in rows}

    # -- reading -------------------------------------------------------------------------------

    def _select_one(
        self, cur: psycopg.Cursor[Any], query: str, params: Sequence[object]
    ) -> RunRecord | None:
        row = cur.execute(query, params).fetchone()
        if row is None:
            return None
        return run_from_row(row, cur.execute(sql.STEPS_OF_RUN, (row[0],)).fetchall())

    def _select(
        self, cur: psycopg.Cursor[Any], query: str, params: Sequence[object]
    ) -> list[RunRecord]:
        """The runs ``query`` reads, each with its steps (read in one more query)."""
        return self._with_steps(cur, cur.execute(query, params).fetchall())

    def _with_steps(self, cur: psycopg.Cursor[Any], rows: list[tuple[Any, ...]]) -> list[RunRecord]:
        by_run: dict[int, list[tuple[Any, ...]]] = {}
        if rows:
            for step in cur.execute(sql.STEPS_OF_RUNS, ([row[0] for row in rows],)):
                by_run.setdefault(step[0], []).append(step)
        return [run_from_row(row, by_run.get(row[0], ())) for row in rows]


def _filter_sql(flt: RunFilter) -> tuple[str, list[object]]:
    clauses, params = column_filters(flt, "%s")
    # keyset cursors, in the order listed: after or before the run named (none when it is gone:
    # nothing matches), or after a (created_at, seq) position
    if flt.before_id is not None:
        clauses.append(sql.BEFORE_RUN)
        params.append(flt.before_id)
    if flt.after_id is not None:
        clauses.append(sql.AFTER_RUN)
        params.append(flt.after_id)
    if flt.before is not None:
        clauses.append(sql.BEFORE_CURSOR)
        params.extend(flt.before)
    if flt.key is not None:
        clauses.append(sql.KEY_FILTER)
        k = flt.key
        # "@" then "A" in byte order: the range holds exactly the keys "key@..."
        params.extend([k, k + "@", k + "A", len(k) + 17, k])
    return (" AND ".join(clauses) or "TRUE"), params


def error_text(exc: BaseException, url: str) -> str:
    """The first line of psycopg's message about ``url``, the URL's password masked (libpq
    quotes a URL it cannot parse whole)."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    found = _PASSWORD.search(url)
    if found and found.group(1):
        text = text.replace(found.group(1), "***")
    return text


#: The password of a URL, even of one ``urlsplit`` cannot parse.
_PASSWORD = re.compile(r"://[^:/@]*:([^@]*)@")
