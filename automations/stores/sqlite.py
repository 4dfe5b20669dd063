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

import enum
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

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
from automations.stores.codec import check_run_changes, column_filters, dump_json, normalize_run
from automations.stores.sqlite_claims import SQLiteClaims
from automations.stores.sqlite_schema import (
    AUDIT_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
    audit_from_row,
    audit_params,
    migrate,
    run_column_value,
    run_from_row,
    run_params,
    step_params,
    stored_run,
)

__all__ = ["PRUNE_BATCH", "SQLiteStore", "VacuumChange"]

_RUN_SELECT = f"SELECT seq, {RUN_COLUMNS} FROM runs"
#: Where ``created_at`` is in a row of ``_RUN_SELECT``.
_CREATED_AT = 1 + RUN_COLUMNS.replace(" ", "").split(",").index("created_at")
_STEP_SELECT = f"SELECT run_seq, {STEP_COLUMNS} FROM steps"
_INSERT_RUN = (
    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * len(RUN_COLUMNS.split(',')))}) "
    "ON CONFLICT (recipe, event_key) DO NOTHING"
)
# Upsert, not REPLACE: the second write of a step updates its row in place.
_PUT_STEP = (
    f"INSERT INTO steps (run_seq, {STEP_COLUMNS}) "
    f"SELECT seq, {', '.join('?' * len(STEP_COLUMNS.split(',')))} FROM runs WHERE id = ? "
    "ON CONFLICT (run_seq, idx) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in STEP_COLUMNS.replace(" ", "").split(",")[1:])
)
#: How long before the window ``steps_done_since`` counts a step may have started: the default
#: retry budget (AUTOMATIONS_RETRY_BUDGET, 15 minutes) of a step retried through an outage.
_STEP_LOOKBACK_S = 900.0
#: SQLite's default limit on ``?`` parameters is 32766 (999 before 3.32): stay well below.
_IN_CHUNK = 500
_UNFINISHED = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
#: The statuses the ``runs_attention`` index holds (schema version 5).
_ATTENTION = frozenset({RunStatus.HELD.value, RunStatus.UNKNOWN.value})
#: Pruning: runs deleted per statement (at most ``_IN_CHUNK``), how long one commit may take
#: (a writer waits this long at most), and the pause between commits.
PRUNE_BATCH = 50
_PRUNE_SLICE_S = 0.01
_PRUNE_PAUSE_S = 0.005
#: The page cache of the store's connection: 32 MB (SQLite's default is 2 MB), so that pruning
#: and the indexes of a large history are not read again from the file at every statement.
_CACHE_KIB = 32 * 1024
#: ``PRAGMA auto_vacuum`` values: INCREMENTAL frees pages on request (``reclaim``).
_INCREMENTAL = 2
#: Pages given back per commit at most, and how long ``reclaim`` holds the database at a time.
_VACUUM_STEP_PAGES = 16
_VACUUM_SLICE_S = 0.01
#: Free space kept beyond what a VACUUM needs.
_SPACE_MARGIN = 64 << 20
#: The WAL is truncated back to this size at each checkpoint (it had grown to the largest
#: transaction, and stayed there until a restart).
_WAL_LIMIT = 64 << 20
_KEEP_FAILED = (RunStatus.FAILED.value, RunStatus.UNKNOWN.value)
_KEEP_SUCCEEDED = tuple(s.value for s in RunStatus if s.is_final and s.value not in _KEEP_FAILED)
_PRUNABLE = (
    f"(status IN ({', '.join('?' * len(_KEEP_FAILED))}) AND created_at < ?) OR "
    f"(status IN ({', '.join('?' * len(_KEEP_SUCCEEDED))}) AND created_at < ?)"
)


class VacuumChange(enum.Enum):
    """What ``SQLiteStore.enable_incremental_vacuum`` did."""

    #: The file gives space back already (every file created since schema 7).
    ALREADY = "already"
    #: Converted now.
    DONE = "done"
    #: Not converted: the file is larger than allowed here (``automations db migrate`` does it).
    TOO_LARGE = "too-large"
    #: Not converted: less free space than twice the file's size.
    NO_SPACE = "no-space"
    #: Not converted: another process had the file open (or the disk filled up meanwhile).
    BUSY = "busy"


class SQLiteStore(SQLiteClaims, Store):
    """``RunStore`` and ``StateStore`` in the SQLite file at ``path`` (created if missing).

    Every method is durable when it returns, unless called inside ``transaction()``, which
    groups writes into one commit. ``clock`` gives the time ``claim`` records as ``started_at``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sqlite3.sqlite_version_info < (3, 35):  # UPDATE ... RETURNING
            raise StoreError(
                "the run store needs SQLite 3.35 or newer; this Python has "
                f"{sqlite3.sqlite_version}"
            )
        self.path = str(path)
        self._clock = clock
        self._lock = threading.RLock()
        #: How many ``_Transaction`` blocks the lock holder is in.
        self._depth = 0
        self._guard = _Guard(self)
        #: The request last written by ``_put_step`` and its JSON text.
        self._last_request: tuple[object, str | None] = (None, None)
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open run store {self.path}: {exc}") from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            if self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None:
                # a new file, before its first table: it gives space back when runs are pruned
                self._db.execute(f"PRAGMA auto_vacuum = {_INCREMENTAL}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
            self._db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            migrate(self._db, self.path)
        except (sqlite3.Error, StoreError) as exc:
            self._db.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open run store {self.path}: {exc}") from exc

    def check_writable(self) -> None:
        """Raise ``StoreError`` unless this process can write the database (a read-only file,
        folder or file system, or an immutable file). Writes nothing: the test write is rolled
        back."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "INSERT OR REPLACE INTO state (scope, key, value) VALUES (?, ?, ?)",
                        ("automations", "writable", "1"),
                    )
                finally:
                    _rollback(self._db)
            except sqlite3.Error as exc:
                raise StoreError(
                    f"run store {self.path} cannot be written ({exc}): the runner records every "
                    "event before answering it. Make the file (and its folder) writable for "
                    "this user, or pass --db with a writable path"
                ) from exc

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose writes (from this thread) commit together, once, when it ends.

        ``with store.transaction(): ...``. Writes are durable when the block exits, not when each
        method returns: never send a request that relies on "written before sent" from inside
        one. Other threads wait until the block ends. A nested block joins the outermost one; an
        exception leaving the outermost block rolls all its writes back.
        """
        return _Transaction(self)

    def savepoint(self) -> AbstractContextManager[None]:
        """Inside ``transaction()``, on its thread: a block whose writes are undone alone when
        it raises (the exception goes on), the enclosing transaction kept. ``StoreError`` when
        the enclosing transaction is gone (SQLite ends it by itself on a full disk): nothing of
        it will commit. Used by grouped commits (``stores/thread``)."""
        return _Savepoint(self)

    # -- RunStore -----------------------------------------------------------------------------

    def enqueue(self, run: RunRecord) -> tuple[RunRecord, bool]:
        with _Transaction(self):
            return self._enqueue(run)

    def enqueue_many(self, runs: Sequence[RunRecord]) -> list[tuple[RunRecord, bool]]:
        with _Transaction(self):
            return [self._enqueue(run) for run in runs]

    def _enqueue(self, run: RunRecord) -> tuple[RunRecord, bool]:
        params = run_params(run)
        try:
            inserted = self._db.execute(_INSERT_RUN, params).rowcount
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"a run with id {run.id} exists already") from exc
        if not inserted:
            existing = self._select_one("recipe = ? AND event_key = ?", (run.recipe, run.event_key))
            assert existing is not None  # the insert conflicted with it, in this transaction
            return existing, False
        if not run.steps:
            return stored_run(run, params), True
        stored = normalize_run(run)
        for step in stored.steps:
            self._put_step(step)
        return stored, True

    def claim(
        self, run_id: str, recipe_hash: str, *, lease: Lease | None = None, **fields: object
    ) -> RunRecord | None:
        changes = check_run_changes(fields)
        extra = "".join(f", {name} = ?" for name in changes)
        values = [run_column_value(name, value) for name, value in changes.items()]
        # with a lease, fenced: only while the run is running under it
        fence, fenced = (
            (
                " AND status = 'running' AND lease_owner = ? AND lease_token = ?",
                (lease.owner, lease.token),
            )
            if lease is not None
            else ("", ())
        )
        with _Transaction(self):
            # RETURNING gives the claimed row in the same statement (one query fewer per run)
            row = self._db.execute(
                "UPDATE runs SET status = ?, recipe_hash = ?, started_at = COALESCE(started_at, ?)"
                f"{extra} WHERE id = ? AND status IN (?, ?){fence} RETURNING seq, {RUN_COLUMNS}, "
                "EXISTS (SELECT 1 FROM steps WHERE run_seq = runs.seq)",
                (
                    RunStatus.RUNNING.value,
                    recipe_hash,
                    self._clock(),
                    *values,
                    run_id,
                    *_UNFINISHED,
                    *fenced,
                ),
            ).fetchone()
            if row is None:
                if self._select_one("id = ?", (run_id,)) is None:
                    raise StoreError(f"no run with id {run_id}")
                return None
            # a fresh run has no steps: they are read only for a resumed or replayed one
            steps = (
                self._db.execute(
                    f"{_STEP_SELECT} WHERE run_seq = ? ORDER BY idx", (row[0],)
                ).fetchall()
                if row[-1]
                else []
            )
        return run_from_row(row[:-1], steps)

    def unfinished(self) -> list[RunRecord]:
        with self._guard:
            return self._select("status IN (?, ?) ORDER BY seq", _UNFINISHED)

    def unfinished_after(self, recipe: str, after: str | None, limit: int) -> list[RunRecord]:
        # literal statuses: the planner uses the partial index runs_backlog only when the query
        # names the same ones; a run ``after`` that is gone (pruned) reads from the first
        with self._guard:
            rows = self._db.execute(
                f"{_RUN_SELECT} WHERE recipe = ? AND status IN ('pending', 'running') AND "
                "seq > COALESCE((SELECT seq FROM runs WHERE id = ?), 0) ORDER BY seq LIMIT ?",
                (recipe, after, limit),
            ).fetchall()
        return [run_from_row(row, ()) for row in rows]

    def unfinished_counts(self) -> dict[str, int]:
        with self._guard:
            rows = self._db.execute(
                "SELECT recipe, COUNT(*) FROM runs WHERE status IN ('pending', 'running') "
                "GROUP BY recipe"
            ).fetchall()
        return {str(recipe): int(n) for recipe, n in rows}

    def update_run(self, run_id: str, **fields: object) -> None:
        changes = check_run_changes(fields)
        assignments = ", ".join(f"{name} = ?" for name in changes) or "id = id"
        values = [run_column_value(name, value) for name, value in changes.items()]
        with self._guard:
            try:
                updated = self._db.execute(
                    f"UPDATE runs SET {assignments} WHERE id = ?", (*values, run_id)
                ).rowcount
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"cannot update run {run_id}: {exc}") from exc
        if not updated:
            raise StoreError(f"no run with id {run_id}")

    def put_step(self, step: StepRecord) -> None:
        with self._guard:
            self._put_step(step)

    def _put_step(self, step: StepRecord) -> None:
        # A step is written twice with the same request (sending, then its outcome; records are
        # immutable): its JSON text is made once.
        last = self._last_request
        if last[0] is not step.request:
            last = self._last_request = (step.request, dump_json(step.request))
        params = step_params(step, last[1])
        if not self._db.execute(_PUT_STEP, (*params, step.run_id)).rowcount:
            raise StoreError(f"no run with id {step.run_id}")

    def get_run(self, run_id: str) -> RunRecord:
        with self._guard:
            run = self._select_one("id = ?", (run_id,))
            if run is not None:
                return run
            if run_id:
                # The two smallest ids >= the prefix are the only candidates that can start with it.
                rows = self._db.execute(
                    "SELECT id FROM runs WHERE id >= ? ORDER BY id LIMIT 2", (run_id,)
                ).fetchall()
                found = [r[0] for r in rows if r[0].startswith(run_id)]
                if len(found) > 1:
                    raise StoreError(f"ambiguous run id prefix {run_id}")
                if found:
                    run = self._select_one("id = ?", (found[0],))
                    assert run is not None
                    return run
        raise StoreError(f"no run with id {run_id}")

    def find_run(self, recipe: str, event_key: str) -> RunRecord | None:
        with self._guard:
            return self._select_one("recipe = ? AND event_key = ?", (recipe, event_key))

    def list_runs_page(self, flt: RunFilter) -> RunPage:
        if flt.limit <= 0:
            return RunPage([], None)
        where, params = _filter_sql(flt)
        with self._guard:
            # one more than asked: whether there is a next page, without counting
            rows = self._db.execute(
                f"{_RUN_SELECT} WHERE {where} ORDER BY created_at DESC, seq DESC LIMIT ?",
                (*params, flt.limit + 1),
            ).fetchall()
            more = len(rows) > flt.limit
            del rows[flt.limit :]
            runs = self._with_steps(rows)
        return RunPage(runs, (rows[-1][_CREATED_AT], rows[-1][0]) if more else None)

    def count(self, status: RunStatus | None = None) -> int:
        where, params = _filter_sql(RunFilter(status=status))
        with self._guard:
            row = self._db.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", params).fetchone()
        return int(row[0])

    def prune(self, *, now: float, keep_succeeded_s: float, keep_failed_s: float) -> int:
        """Deletes in commits of about ``_PRUNE_SLICE_S`` each (``PRUNE_BATCH`` runs at a time
        within one), pausing between them so other threads (the intake) write in between; a
        writer waits for one slice at most. Then gives the space back (``reclaim``)."""
        params = (
            *_KEEP_FAILED,
            now - keep_failed_s,
            *_KEEP_SUCCEEDED,
            now - keep_succeeded_s,
            PRUNE_BATCH,
        )
        removed = 0
        more = True
        while more:
            with _Transaction(self):
                deadline = time.monotonic() + _PRUNE_SLICE_S
                while more and time.monotonic() < deadline:
                    seqs = [
                        row[0]
                        for row in self._db.execute(
                            f"SELECT seq FROM runs WHERE {_PRUNABLE} LIMIT ?", params
                        )
                    ]
                    if seqs:
                        marks = ", ".join("?" * len(seqs))
                        self._db.execute(f"DELETE FROM steps WHERE run_seq IN ({marks})", seqs)
                        self._db.execute(f"DELETE FROM runs WHERE seq IN ({marks})", seqs)
                    removed += len(seqs)
                    more = len(seqs) == PRUNE_BATCH
            if more:
                time.sleep(_PRUNE_PAUSE_S)  # the lock is free: a waiting writer takes it now
        if removed:
            self.reclaim()
        return removed

    def reclaim(self) -> None:
        """Give the pages freed by deletions back to the file system: the file shrinks (with
        ``auto_vacuum = INCREMENTAL``: ``enable_incremental_vacuum``) in slices of about
        ``_VACUUM_SLICE_S``, so a writer waits for one slice at most, and the WAL is
        checkpointed and truncated to zero (unless a reader holds it: then at the next prune)."""
        with self._guard:
            incremental = self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == _INCREMENTAL
        while incremental:
            with self._guard:
                deadline = time.monotonic() + _VACUUM_SLICE_S
                while (left := self._db.execute("PRAGMA freelist_count").fetchone()[0]) and (
                    time.monotonic() < deadline
                ):
                    # each execution is its own commit: a few pages (one, with Python's
                    # sqlite3, which steps the statement once) moved to the freed places and
                    # the file cut after them
                    self._db.execute(f"PRAGMA incremental_vacuum({_VACUUM_STEP_PAGES})").fetchall()
            if not left:
                break
            time.sleep(_PRUNE_PAUSE_S)
        with self._guard:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def enable_incremental_vacuum(self, *, max_bytes: int | None = None) -> VacuumChange:
        """Make a file created before schema 7 give space back when runs are pruned: set
        ``auto_vacuum = INCREMENTAL``, which takes one ``VACUUM`` (a rewrite of the whole file
        into a copy, then back through the WAL: it needs about twice the file's size free, and
        holds the database for roughly a minute per GB). Not done when the file is over
        ``max_bytes`` or the free space is short, nor while another process reads the file
        (``VacuumChange`` says which); done at most once per file."""
        with self._guard:
            if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == _INCREMENTAL:
                return VacuumChange.ALREADY
            if self.path == ":memory:" or not Path(self.path).exists():
                return VacuumChange.ALREADY
            size = Path(self.path).stat().st_size
            wal = Path(f"{self.path}-wal")
            size += wal.stat().st_size if wal.exists() else 0
            if max_bytes is not None and size > max_bytes:
                return VacuumChange.TOO_LARGE
            folders = {str(Path(self.path).resolve().parent), tempfile.gettempdir()}
            if any(shutil.disk_usage(f).free < 2 * size + _SPACE_MARGIN for f in folders):
                return VacuumChange.NO_SPACE
            try:
                self._db.execute(f"PRAGMA auto_vacuum = {_INCREMENTAL}")
                self._db.execute("VACUUM")
            except sqlite3.OperationalError:  # busy (a reader), or the disk filled up
                with suppress(sqlite3.Error):
                    self._db.execute("PRAGMA auto_vacuum = 0")
                return VacuumChange.BUSY
            with suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return VacuumChange.DONE

    def end_hold(
        self, recipe: str, status: RunStatus, *, now: float, error: str | None = None
    ) -> int:
        check_end_hold(status)
        final = status is RunStatus.DISCARDED
        with _Transaction(self):
            return int(
                self._db.execute(
                    "UPDATE runs SET status = ?, error = CASE WHEN ? THEN ? ELSE error END, "
                    "finished_at = CASE WHEN ? THEN ? ELSE finished_at END "
                    "WHERE recipe = ? AND status = ?",
                    (status.value, final, error, final, now, recipe, RunStatus.HELD.value),
                ).rowcount
            )

    def steps_done_since(self, since: float) -> list[tuple[str, str, str, float]]:
        # A step's row is inserted when it starts (``sending``) and updated in place, so the
        # steps of the last minutes are the last rowids: find where those begin (a backward
        # walk over recent rows only), then read from there. A step that ended after ``since``
        # started less than _STEP_LOOKBACK_S before it.
        with self._guard:
            row = self._db.execute(
                "SELECT rowid FROM steps WHERE started_at < ? ORDER BY rowid DESC LIMIT 1",
                (since - _STEP_LOOKBACK_S,),
            ).fetchone()
            rows = self._db.execute(
                "SELECT runs.recipe, steps.action, runs.id, steps.finished_at FROM steps "
                "JOIN runs ON runs.seq = steps.run_seq "
                "WHERE steps.rowid > ? AND steps.finished_at >= ? "
                "AND steps.status NOT IN ('pending', 'sending', 'skipped')",
                (row[0] if row is not None else 0, since),
            ).fetchall()
        return [(str(a), str(b), str(c), float(d)) for a, b, c, d in rows]

    def count_by_recipe(self, status: RunStatus) -> dict[str, int]:
        # SQLite uses a partial index only when the query repeats its condition word for word
        # (its prover does not see that "status = ?" implies "status IN (...)")
        attention = " AND status IN ('held', 'unknown')" if status.value in _ATTENTION else ""
        with self._guard:
            rows = self._db.execute(
                f"SELECT recipe, COUNT(*) FROM runs WHERE status = ?{attention} GROUP BY recipe",
                (status.value,),
            ).fetchall()
        return {str(recipe): int(n) for recipe, n in rows}

    def add_audit(self, entry: AuditEntry) -> None:
        with self._guard:
            self._db.execute(
                f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                audit_params(entry),
            )

    def audit_log(self, run_id: str | None = None, *, limit: int = 100) -> list[AuditEntry]:
        where, params = ("run_id = ?", [run_id]) if run_id is not None else ("1", [])
        with self._guard:
            rows = self._db.execute(
                f"SELECT {AUDIT_COLUMNS} FROM (SELECT seq, {AUDIT_COLUMNS} FROM audit "
                f"WHERE {where} ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (*params, max(limit, 0)),
            ).fetchall()
        return [audit_from_row(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            # Closed already, or busy: optimizing is only a hint.
            with suppress(sqlite3.Error):
                self._db.execute("PRAGMA optimize")
            self._db.close()

    # -- StateStore ---------------------------------------------------------------------------

    def get_state(self, scope: str, key: str) -> str | None:
        with self._guard:
            row = self._db.execute(
                "SELECT value FROM state WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, scope: str, items: Iterable[tuple[str, str]]) -> None:
        with _Transaction(self):
            self._db.executemany(
                "INSERT OR REPLACE INTO state (scope, key, value) VALUES (?, ?, ?)",
                ((scope, key, value) for key, value in items),
            )

    def get_states(self, scope: str, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        with self._guard:
            # the primary key (scope, key) answers each lookup; IN lists stay under SQLite's
            # limit on bound parameters
            for start in range(0, len(unique), _IN_CHUNK):
                part = unique[start : start + _IN_CHUNK]
                marks = ", ".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT key, value FROM state WHERE scope = ? AND key IN ({marks})",
                    (scope, *part),
                ).fetchall()
                found.update((str(k), str(v)) for k, v in rows)
        return found

    def all_state(self, scope: str) -> dict[str, str]:
        with self._guard:
            rows = self._db.execute(
                "SELECT key, value FROM state WHERE scope = ? ORDER BY key", (scope,)
            ).fetchall()
        return {str(k): str(v) for k, v in rows}

    # -- ClaimStore (``sqlite_claims``) ---------------------------------------------------------

    def _write(self) -> _Transaction:
        return _Transaction(self)

    def _read(self) -> _Guard:
        return self._guard

    def _existing(self, run_id: str) -> RunRecord:
        run = self._select_one("id = ?", (run_id,))
        assert run is not None  # read in the transaction that found it
        return run

    # -- reading ------------------------------------------------------------------------------

    def _select_one(self, where: str, params: Sequence[object]) -> RunRecord | None:
        row = self._db.execute(f"{_RUN_SELECT} WHERE {where}", params).fetchone()
        if row is None:
            return None
        steps = self._db.execute(f"{_STEP_SELECT} WHERE run_seq = ? ORDER BY idx", (row[0],))
        return run_from_row(row, steps.fetchall())

    def _select(self, where: str, params: Sequence[object]) -> list[RunRecord]:
        """The runs matching ``where``, each with its steps."""
        return self._with_steps(self._db.execute(f"{_RUN_SELECT} WHERE {where}", params).fetchall())

    def _with_steps(self, rows: list[tuple[Any, ...]]) -> list[RunRecord]:
        steps = self._steps_for([row[0] for row in rows])
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
    clauses, params = column_filters(flt, "?")
    # keyset cursors, in the order listed (created_at, then seq): after or before the run named
    # (none when it is gone: nothing matches), or after a (created_at, seq) position. The first
    # term of each is a range on the indexes' created_at.
    if flt.before_id is not None:
        clauses.append(
            f"created_at <= {_AT_RUN} AND (created_at < {_AT_RUN} OR seq < {_SEQ_OF_RUN})"
        )
        params.extend([flt.before_id] * 3)
    if flt.after_id is not None:
        clauses.append(
            f"created_at >= {_AT_RUN} AND (created_at > {_AT_RUN} OR seq > {_SEQ_OF_RUN})"
        )
        params.extend([flt.after_id] * 3)
    if flt.before is not None:
        clauses.append("created_at <= ? AND (created_at < ? OR seq < ?)")
        params.extend([flt.before[0], flt.before[0], flt.before[1]])
    if flt.key is not None:
        # records.key_matches, written so that each term uses an index (runs_event_key,
        # runs_schedule_key): a key's runs are found in microseconds among a million. The
        # other terms are made unusable by an index (unary +), so the planner never prefers
        # walking a recipe's or a status's whole history in order over these few rows.
        clauses = [_no_index(c) for c in clauses]
        clauses.append(
            "(event_key = ? OR (event_key > ? AND event_key < ? AND length(event_key) = ? "
            "AND substr(event_key, -16) NOT GLOB '*[^0-9a-f]*') "
            "OR (trigger = 'schedule' AND substr(event_key, 22) = ?))"
        )
        k = flt.key
        # "@" then "A" in code point order: the range holds exactly the keys "key@..."
        params.extend([k, k + "@", k + "A", len(k) + 17, k])
    return (" AND ".join(clauses) or "1"), params


_AT_RUN = "(SELECT created_at FROM runs WHERE id = ?)"
_SEQ_OF_RUN = "(SELECT seq FROM runs WHERE id = ?)"


def _no_index(clause: str) -> str:
    for column in ("recipe", "status", "created_at", "seq"):
        clause = clause.replace(f"{column} ", f"+{column} ")
    return clause


class _Guard:
    """Holds the store's connection; turns SQLite's errors into ``StoreError``.

    A class rather than a ``@contextmanager``: it runs several times per run recorded, and a
    generator-based context manager costs several times more.
    """

    __slots__ = ("_store",)

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._store._lock.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._store._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"run store {self._store.path}: {exc}") from exc


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``) around a block, joining an
    enclosing one. ``IMMEDIATE`` takes the write lock up front, so that two processes never
    both read and then fail to upgrade to writing."""

    __slots__ = ("_store",)

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        store = self._store
        store._lock.acquire()
        if store._depth == 0:
            try:
                store._db.execute("BEGIN IMMEDIATE")
            except BaseException as exc:
                store._lock.release()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"run store {store.path}: {exc}") from exc
                raise
        store._depth += 1

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        store = self._store
        try:
            store._depth -= 1
            if store._depth == 0:
                if exc is None:
                    try:
                        store._db.execute("COMMIT")
                    except sqlite3.Error:
                        _rollback(store._db)
                        raise
                else:
                    _rollback(store._db)
        except sqlite3.Error as error:
            raise StoreError(f"run store {store.path}: {error}") from error
        finally:
            store._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"run store {store.path}: {exc}") from exc


class _Savepoint:
    """``SAVEPOINT`` ... ``RELEASE`` (or ``ROLLBACK TO``) around a block (``savepoint``)."""

    __slots__ = ("_store",)

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        store = self._store
        if store._depth == 0:
            raise StoreError(f"run store {store.path}: a savepoint needs a transaction")
        try:
            store._db.execute("SAVEPOINT call")
        except sqlite3.Error as exc:
            raise StoreError(f"run store {store.path}: {exc}") from exc

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        store = self._store
        db = store._db
        if not db.in_transaction:
            raise StoreError(f"run store {store.path}: the transaction was rolled back")
        try:
            if exc is not None:
                db.execute("ROLLBACK TO call")
            db.execute("RELEASE call")
        except sqlite3.Error as error:
            raise StoreError(f"run store {store.path}: {error}") from error


def _rollback(db: sqlite3.Connection) -> None:
    # A failed COMMIT may or may not have ended the transaction.
    if db.in_transaction:
        db.execute("ROLLBACK")
