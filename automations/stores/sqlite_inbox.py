"""The webhook inbox of a SQLite run store: a file of its own that the intake process writes.

The intake process (``automations/intake``) answers each webhook once its event is durable. In
the run store itself, that insert would cost a dozen index updates and would wait for the
runner's own writes (one writer at a time per SQLite file, and a busy wait is at least a
millisecond). So it records into ``<db>-inbox``, a file with one table and one index that only
it writes, and the runner moves the new rows into ``runs`` (``InboxMover``), a few hundred at a
time, in one transaction of the run store, which also records how far it moved. The intake
process deletes the rows moved (reading that mark) in its own next transaction.

Nothing is lost or doubled on a crash of either process: a row is in the inbox until the
transaction that copies it into ``runs`` commits (with the mark); the copy ignores a row whose
``(recipe, event_key)`` already has a run. A delivery repeated while its first copy waits in the
inbox is found there (one run, answered 200). An event's run id is given by the intake and kept.

The inbox file carries a random identity, saved with the mark: a fresh inbox (deleted, or the
run store copied elsewhere without it) starts from the beginning, never skipping rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from automations.errors import StoreError
from automations.ports import Inbox
from automations.records import RunRecord
from automations.stores.sqlite import SQLiteStore
from automations.stores.sqlite_schema import RUN_COLUMNS, run_params

__all__ = ["InboxMover", "SQLiteInbox", "inbox_path", "waiting_in_inbox"]

log = logging.getLogger("automations.runner")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox ("
    " seq INTEGER PRIMARY KEY,"
    f" {RUN_COLUMNS},"  # no declared types: values kept exactly as given
    " order_key TEXT,"
    " UNIQUE (recipe, event_key))",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_N = len(RUN_COLUMNS.split(",")) + 1
_INSERT = (
    f"INSERT INTO inbox ({RUN_COLUMNS}, order_key) VALUES ({', '.join('?' * _N)}) "
    "ON CONFLICT (recipe, event_key) DO NOTHING"
)
#: Where the run store keeps how far it moved: ``<inbox identity>:<seq>``.
_MARK_SCOPE, _MARK_KEY = "automations", "inbox_moved"
_READ_MARK = "SELECT value FROM state WHERE scope = ? AND key = ?"
_WRITE_MARK = (
    "INSERT INTO state (scope, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value"
)
_IDENTITY = "SELECT value FROM {schema}meta WHERE key = 'identity'"
_PAGE = f"SELECT seq, {RUN_COLUMNS}, order_key FROM inbox.inbox WHERE seq > ? ORDER BY seq LIMIT ?"
_MOVE = (
    f"INSERT INTO runs ({RUN_COLUMNS}, order_key) VALUES ({', '.join('?' * _N)}) "
    "ON CONFLICT DO NOTHING"
)
#: How often the inbox's WAL is copied into its file (off the writer's path).
CHECKPOINT_S = 0.25
#: Rows moved per transaction of the run store.
MOVE_PAGE = 2000


def inbox_path(db: str | Path) -> Path:
    """The inbox file of the run store ``db``."""
    return Path(f"{db}-inbox")


def _connect(path: str | Path, busy_timeout_s: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    return db


def _identity(db: sqlite3.Connection) -> str:
    db.execute("INSERT OR IGNORE INTO meta VALUES ('identity', ?)", (uuid.uuid4().hex,))
    return str(db.execute(_IDENTITY.format(schema="")).fetchone()[0])


def _open_inbox(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    try:
        db = _connect(path, busy_timeout_s)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        for statement in _SCHEMA:
            db.execute(statement)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the webhook inbox {path}: {exc}") from exc
    return db


def _moved_upto(value: str | None, identity: str) -> int:
    """The last inbox ``seq`` moved, from the run store's mark (0 for another inbox's)."""
    if not value:
        return 0
    owner, _, seq = value.partition(":")
    return int(seq) if owner == identity and seq.isdigit() else 0


def waiting_in_inbox(db: str | Path) -> int:
    """How many events the inbox file of run store ``db`` holds that are not in ``runs`` yet
    (read only; 0 without an inbox)."""
    path = inbox_path(db)
    if not path.exists():
        return 0
    try:
        main = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
        try:
            row = main.execute(_READ_MARK, (_MARK_SCOPE, _MARK_KEY)).fetchone()
        finally:
            main.close()
        inbox = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            identity = inbox.execute(_IDENTITY.format(schema="")).fetchone()
            upto = _moved_upto(None if row is None else str(row[0]), str((identity or [""])[0]))
            return int(
                inbox.execute("SELECT count(*) FROM inbox WHERE seq > ?", (upto,)).fetchone()[0]
            )
        finally:
            inbox.close()
    except sqlite3.Error:
        return 0


class SQLiteInbox(Inbox):
    """The intake process's side: records events in the inbox file of run store ``db`` (which
    must exist: the runner created it), de-duplicated against the runs already moved."""

    def __init__(self, db: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = inbox_path(db)
        self._db = _open_inbox(self.path, busy_timeout_s)
        try:
            self._identity = _identity(self._db)
            # reads only (WAL: never waits for the runner's writes, nor makes them wait)
            self._runs = _connect(Path(db), busy_timeout_s)
            self._runs.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open run store {db}: {exc}") from exc
        self._pruned = 0
        # the writer never checkpoints (a checkpoint syncs the disk, milliseconds to tens of
        # them, and every webhook of that moment would wait): a thread of its own does
        self._db.execute("PRAGMA wal_autocheckpoint = 0")
        self._stop = threading.Event()
        self._checkpoints = threading.Thread(
            target=self._checkpoint_forever, name="inbox-checkpoint", daemon=True
        )
        self._checkpoints.start()

    def _checkpoint_forever(self) -> None:
        """Copy the WAL into the inbox file every ``CHECKPOINT_S`` (``PASSIVE``: it never waits
        for the writer, nor makes it wait); the WAL restarts from its beginning once all of it
        is copied, so it stays small."""
        try:
            db = _connect(self.path, 5.0)
        except sqlite3.Error as exc:
            log.warning("webhook inbox %s: no checkpoints (%s)", self.path, exc)
            return
        try:
            while not self._stop.wait(CHECKPOINT_S):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # the next one tries again
                    log.debug("webhook inbox checkpoint: %s", exc)
        finally:
            db.close()

    def record(self, items: Sequence[tuple[RunRecord, str | None]]) -> list[tuple[RunRecord, bool]]:
        db, runs = self._db, self._runs
        out: list[tuple[RunRecord, bool]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                # one read snapshot of the run store for the group, not one per statement
                runs.execute("BEGIN")
                self._prune()
                for run, order_key in items:
                    found = runs.execute(
                        "SELECT id FROM runs WHERE recipe = ? AND event_key = ?",
                        (run.recipe, run.event_key),
                    ).fetchone()
                    if found is None:
                        if db.execute(_INSERT, (*run_params(run), order_key)).rowcount:
                            out.append((run, True))
                            continue
                        found = db.execute(
                            "SELECT id FROM inbox WHERE recipe = ? AND event_key = ?",
                            (run.recipe, run.event_key),
                        ).fetchone()
                    out.append((dataclasses.replace(run, id=str(found[0])), False))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            finally:
                if runs.in_transaction:
                    runs.execute("COMMIT")  # ends the read snapshot (nothing was written)
        except sqlite3.Error as exc:
            raise StoreError(f"webhook inbox {self.path}: {exc}") from exc
        return out

    def _prune(self) -> None:
        """Delete the rows the run store has (inside this process's write transaction)."""
        row = self._runs.execute(_READ_MARK, (_MARK_SCOPE, _MARK_KEY)).fetchone()
        upto = _moved_upto(None if row is None else str(row[0]), self._identity)
        if upto > self._pruned:
            # the newest row stays: a new row's seq is the largest plus one, so a seq is never
            # given twice (the mark counts on it) without AUTOINCREMENT's extra write
            self._db.execute(
                "DELETE FROM inbox WHERE seq <= ? AND seq < (SELECT MAX(seq) FROM inbox)", (upto,)
            )
            self._pruned = upto

    def close(self) -> None:
        self._stop.set()
        self._checkpoints.join()
        with contextlib.suppress(sqlite3.Error):  # else the next open replays the WAL
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        self._runs.close()


class InboxMover:
    """The runner's side: moves the inbox's new rows into ``runs`` through ``store``'s
    connection (the inbox attached to it), in pages, each with the mark in one transaction."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.path = inbox_path(store.path)
        # created here first: the runner starts before its intake process
        db = _open_inbox(self.path, 5.0)
        try:
            _identity(db)
        finally:
            db.close()
        try:
            with store._lock:  # not inside a transaction: SQLite refuses ATTACH there
                store._db.execute("ATTACH DATABASE ? AS inbox", (str(self.path),))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the webhook inbox {self.path}: {exc}") from exc

    def move(self, limit: int = MOVE_PAGE) -> tuple[dict[str, int], list[str]]:
        """Move up to ``limit`` rows: the new runs per recipe, and the ids of rows dropped
        because their event already had a run (a delivery accepted twice; none runs twice)."""
        moved: dict[str, int] = {}
        dropped: list[str] = []
        with self.store.transaction():
            db = self.store._db
            identity = str(db.execute(_IDENTITY.format(schema="inbox.")).fetchone()[0])
            row = db.execute(_READ_MARK, (_MARK_SCOPE, _MARK_KEY)).fetchone()
            upto = _moved_upto(None if row is None else str(row[0]), identity)
            rows = db.execute(_PAGE, (upto, limit)).fetchall()
            if not rows:
                return moved, dropped
            for values in rows:
                if db.execute(_MOVE, values[1:]).rowcount:
                    moved[values[2]] = moved.get(values[2], 0) + 1
                else:
                    dropped.append(str(values[1]))
            db.execute(_WRITE_MARK, (_MARK_SCOPE, _MARK_KEY, f"{identity}:{rows[-1][0]}"))
        return moved, dropped
