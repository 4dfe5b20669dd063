"""The run store and trigger state in one SQLite file: the default store.

Durability: the database runs in WAL mode with ``synchronous=NORMAL``. A write is committed when
the method returns, and a committed transaction survives the process being killed (even
``SIGKILL``): it is in the WAL file, which SQLite replays on the next open. An operating-system
crash or power loss can lose the last commits: NORMAL syncs the WAL to disk only at checkpoints
(every ~1000 pages written), so what is lost is the writes not yet flushed by the OS, usually
the last few milliseconds to seconds. The database itself stays consistent either way.

The file is meant to be read with any SQLite tool; ``sqlite_schema`` describes its tables.

Threads: one connection serves the asyncio loop thread and worker threads, behind a lock. Several
processes may open the same file (a CLI reading while the runner writes); writers wait up to
``busy_timeout`` for one another.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from automations.errors import StoreError
from automations.ports import RunStore, StateStore
from automations.records import RunFilter, RunRecord, RunStatus, StepRecord
from automations.stores.codec import check_run_changes, normalize_run
from automations.stores.sqlite_schema import (
    RUN_COLUMNS,
    STEP_COLUMNS,
    migrate,
    run_column_value,
    run_from_row,
    run_params,
    step_params,
)

__all__ = ["SQLiteStore"]

_RUN_SELECT = f"SELECT seq, {RUN_COLUMNS} FROM runs"
_RUN_MARKS = ", ".join("?" * len(RUN_COLUMNS.split(",")))
_STEP_MARKS = ", ".join("?" * len(STEP_COLUMNS.split(",")))
_STEP_SELECT = f"SELECT run_seq, {STEP_COLUMNS} FROM steps"
#: SQLite's default limit on ``?`` parameters is 32766 (999 before 3.32): stay well below.
_IN_CHUNK = 500
_UNFINISHED = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
_KEEP_FAILED = (RunStatus.FAILED.value, RunStatus.UNKNOWN.value)
_KEEP_SUCCEEDED = tuple(s.value for s in RunStatus if s.is_final and s.value not in _KEEP_FAILED)


class SQLiteStore(RunStore, StateStore):
    """``RunStore`` and ``StateStore`` in the SQLite file at ``path`` (created if missing).

    ``clock`` gives the time ``claim`` records as ``started_at``. Writes can be grouped into one
    commit with ``transaction()``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open run store {self.path}: {exc}") from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            migrate(self._db, self.path)
        except (sqlite3.Error, StoreError) as exc:
            self._db.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open run store {self.path}: {exc}") from exc

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group every write made inside the block (from this thread) into one commit.

        Writes are durable when the block exits, not when each method returns: never send a
        request that depends on "written before sent" from inside a batch. Other threads wait
        until the block ends. Nested blocks join the outermost one; an exception leaving the
        outermost block rolls everything back.
        """
        with self._guard():
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
                self._depth = 0
                self._db.execute("COMMIT")
            except BaseException:
                self._depth = 0
                self._rollback()
                raise

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Hold the connection, and turn SQLite's errors into ``StoreError``."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StoreError(f"run store {self.path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[None]:
        """Hold the connection for several statements that must commit together."""
        with self._guard():
            if self._depth:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        # A failed COMMIT may or may not have ended the transaction.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    # -- RunStore -----------------------------------------------------------------------------

    def enqueue(self, run: RunRecord) -> tuple[RunRecord, bool]:
        with self._write():
            return self._enqueue(run)

    def enqueue_many(self, runs: Sequence[RunRecord]) -> list[tuple[RunRecord, bool]]:
        with self._write():
            return [self._enqueue(run) for run in runs]

    def _enqueue(self, run: RunRecord) -> tuple[RunRecord, bool]:
        stored = normalize_run(run)
        try:
            cursor = self._db.execute(
                f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({_RUN_MARKS}) "
                "ON CONFLICT (recipe, event_key) DO NOTHING",
                run_params(run),
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"a run with id {run.id} exists already") from exc
        if cursor.rowcount == 0:
            existing = self._select_one("recipe = ? AND event_key = ?", (run.recipe, run.event_key))
            assert existing is not None  # the insert conflicted with it, under the same lock
            return existing, False
        for step in stored.steps:
            self._put_step(step)
        return stored, True

    def claim(self, run_id: str, recipe_hash: str) -> RunRecord | None:
        with self._write():
            cursor = self._db.execute(
                "UPDATE runs SET status = ?, recipe_hash = ?, started_at = COALESCE(started_at, ?) "
                "WHERE id = ? AND status IN (?, ?)",
                (RunStatus.RUNNING.value, recipe_hash, self._clock(), run_id, *_UNFINISHED),
            )
            run = self._select_one("id = ?", (run_id,))
        if run is None:
            raise StoreError(f"no run with id {run_id}")
        return run if cursor.rowcount else None

    def unfinished(self) -> list[RunRecord]:
        with self._guard():
            return self._select(
                "status IN (?, ?) ORDER BY created_at, seq", _UNFINISHED, with_steps=True
            )

    def update_run(self, run_id: str, **fields: object) -> None:
        changes = check_run_changes(fields)
        if not changes:
            with self._guard():
                if self._select_one("id = ?", (run_id,), with_steps=False) is None:
                    raise StoreError(f"no run with id {run_id}")
            return
        values = [run_column_value(name, value) for name, value in changes.items()]
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self._guard():
            try:
                cursor = self._db.execute(
                    f"UPDATE runs SET {assignments} WHERE id = ?", (*values, run_id)
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"cannot update run {run_id}: {exc}") from exc
        if cursor.rowcount == 0:
            raise StoreError(f"no run with id {run_id}")

    def put_step(self, step: StepRecord) -> None:
        with self._guard():
            self._put_step(step)

    def _put_step(self, step: StepRecord) -> None:
        cursor = self._db.execute(
            f"INSERT OR REPLACE INTO steps (run_seq, {STEP_COLUMNS}) "
            f"SELECT seq, {_STEP_MARKS} FROM runs WHERE id = ?",
            (*step_params(step), step.run_id),
        )
        if cursor.rowcount == 0:
            raise StoreError(f"no run with id {step.run_id}")

    def get_run(self, run_id: str) -> RunRecord:
        with self._guard():
            run = self._select_one("id = ?", (run_id,))
            if run is not None:
                return run
            if run_id:
                # The two smallest ids >= the prefix are the only candidates that can start with it.
                found = [
                    r
                    for r in self._select(
                        "id >= ? ORDER BY id LIMIT 2", (run_id,), with_steps=False
                    )
                    if r.id.startswith(run_id)
                ]
                if len(found) > 1:
                    raise StoreError(f"ambiguous run id prefix {run_id}")
                if found:
                    run = self._select_one("id = ?", (found[0].id,))
                    assert run is not None
                    return run
        raise StoreError(f"no run with id {run_id}")

    def find_run(self, recipe: str, event_key: str) -> RunRecord | None:
        with self._guard():
            return self._select_one("recipe = ? AND event_key = ?", (recipe, event_key))

    def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        if flt.limit <= 0:
            return []
        where, params = _filter_sql(flt)
        with self._guard():
            return self._select(
                f"{where} ORDER BY created_at DESC, seq DESC LIMIT ?",
                (*params, flt.limit),
                with_steps=True,
            )

    def count(self, status: RunStatus | None = None) -> int:
        where, params = _filter_sql(RunFilter(status=status))
        with self._guard():
            row = self._db.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", params).fetchone()
        return int(row[0])

    def prune(self, *, now: float, keep_succeeded_s: float, keep_failed_s: float) -> int:
        doomed = "(status IN (?, ?) AND created_at < ?) OR (status IN (?, ?) AND created_at < ?)"
        params = (
            *_KEEP_FAILED,
            now - keep_failed_s,
            *_KEEP_SUCCEEDED,
            now - keep_succeeded_s,
        )
        with self._write():
            self._db.execute(
                f"DELETE FROM steps WHERE run_seq IN (SELECT seq FROM runs WHERE {doomed})", params
            )
            return self._db.execute(f"DELETE FROM runs WHERE {doomed}", params).rowcount

    def close(self) -> None:
        with self._lock:
            # Closed already, or busy: optimizing is only a hint.
            with suppress(sqlite3.Error):
                self._db.execute("PRAGMA optimize")
            self._db.close()

    # -- StateStore ---------------------------------------------------------------------------

    def get_state(self, scope: str, key: str) -> str | None:
        with self._guard():
            row = self._db.execute(
                "SELECT value FROM state WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, scope: str, items: Iterable[tuple[str, str]]) -> None:
        with self._write():
            self._db.executemany(
                "INSERT OR REPLACE INTO state (scope, key, value) VALUES (?, ?, ?)",
                ((scope, key, value) for key, value in items),
            )

    def all_state(self, scope: str) -> dict[str, str]:
        with self._guard():
            rows = self._db.execute(
                "SELECT key, value FROM state WHERE scope = ? ORDER BY key", (scope,)
            ).fetchall()
        return {str(k): str(v) for k, v in rows}

    # -- reading ------------------------------------------------------------------------------

    def _select_one(
        self,
        where: str,
        params: Sequence[object],
        *,
        with_steps: bool = True,
    ) -> RunRecord | None:
        rows = self._db.execute(f"{_RUN_SELECT} WHERE {where}", params).fetchall()
        if not rows:
            return None
        steps = self._steps_for([rows[0][0]]) if with_steps else {}
        return run_from_row(rows[0], steps.get(rows[0][0], ()))

    def _select(self, where: str, params: Sequence[object], *, with_steps: bool) -> list[RunRecord]:
        rows = self._db.execute(f"{_RUN_SELECT} WHERE {where}", params).fetchall()
        steps = self._steps_for([row[0] for row in rows]) if with_steps else {}
        return [run_from_row(row, steps.get(row[0], ())) for row in rows]

    def _steps_for(self, seqs: list[int]) -> dict[int, list[tuple[Any, ...]]]:
        """The steps of the runs ``seqs``, in a few queries (not one per run)."""
        by_run: dict[int, list[tuple[Any, ...]]] = {}
        for start in range(0, len(seqs), _IN_CHUNK):
            chunk = seqs[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for row in self._db.execute(
                f"{_STEP_SELECT} WHERE run_seq IN ({marks}) ORDER BY run_seq, idx",
                chunk,
            ):
                by_run.setdefault(row[0], []).append(row)
        return by_run


def _filter_sql(flt: RunFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if flt.recipe is not None:
        clauses.append("recipe = ?")
        params.append(flt.recipe)
    if flt.status is not None:
        clauses.append("status = ?")
        params.append(flt.status.value)
    if flt.since is not None:
        clauses.append("created_at >= ?")
        params.append(flt.since)
    return (" AND ".join(clauses) or "1"), params
