"""``automations db copy``: a SQLite run store's whole history into a PostgreSQL one.

Everything is copied as stored (no record is re-encoded, so nothing changes on the way): runs
with their ids, times and statuses, their steps, the triggers' state (table positions, schedule
fire times, the recipe versions runs ran with) and the audit of people's decisions.

Copying again is safe and adds only what is new: a run already in the destination (the same id,
or the same ``(recipe, event_key)``) is left as it is, with its steps; a state key already there
keeps the destination's value (its triggers may have moved on since); an audit entry equal in
every field to one there is not added twice. Runs are copied in batches, each committed: a copy
that stops half-way is finished by running it again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from automations.errors import StoreError
from automations.stores import postgres_sql as sql
from automations.stores.postgres import PostgresStore, error_text, masked_url
from automations.stores.sqlite import SQLiteStore
from automations.stores.sqlite_schema import AUDIT_COLUMNS, RUN_COLUMNS, STEP_COLUMNS

__all__ = ["CopyCounts", "copy_sqlite_to_postgres"]

#: Runs per batch (and ``?`` marks per step query: SQLite allowed 999 before 3.32).
_BATCH = 500
# Columns holding SQLite's 0/1 for PostgreSQL's booleans (positions in ``RUN_COLUMNS``).
_CONDITION, _DRY_RUN = 9, 10


@dataclass
class CopyCounts:
    """What a copy found in the source, and how much of it was new to the destination."""

    runs: int = 0
    runs_copied: int = 0
    steps: int = 0
    steps_copied: int = 0
    state: int = 0
    state_copied: int = 0
    audit: int = 0
    audit_copied: int = 0

    def lines(self) -> list[str]:
        """One line per table: ``runs: 12 copied, 3 already there``."""
        return [
            f"{name}: {copied} copied, {total - copied} already there"
            for name, total, copied in (
                ("runs", self.runs, self.runs_copied),
                ("steps", self.steps, self.steps_copied),
                ("state", self.state, self.state_copied),
                ("audit", self.audit, self.audit_copied),
            )
        ]


def copy_sqlite_to_postgres(
    source: Path, destination: str, *, progress: Callable[[CopyCounts], None] | None = None
) -> CopyCounts:
    """Copy the run store in the SQLite file ``source`` into the PostgreSQL database
    ``destination`` (its schema created if needed). ``progress`` is called after each batch."""
    if not source.exists():
        raise StoreError(f"no run database at {source}")
    SQLiteStore(source).close()  # brings an older file up to the current schema first
    PostgresStore(destination).close()  # the same for the destination
    counts = CopyCounts()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        with psycopg.connect(destination, autocommit=True) as dst:
            for runs in _batches(src, f"SELECT seq, {RUN_COLUMNS} FROM runs ORDER BY seq"):
                with dst.transaction():
                    _copy_runs(src, dst, runs, counts)
                if progress is not None:
                    progress(counts)
            with dst.transaction():
                _copy_state(src, dst, counts)
                _copy_audit(src, dst, counts)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read run store {source}: {exc}") from exc
    except psycopg.Error as exc:
        raise StoreError(
            f"run store {masked_url(destination)}: {error_text(exc, destination)}"
        ) from exc
    finally:
        src.close()
    return counts


def _batches(db: sqlite3.Connection, query: str) -> Iterator[list[tuple[Any, ...]]]:
    cur = db.execute(query)
    while rows := cur.fetchmany(_BATCH):
        yield rows


def _copy_runs(
    src: sqlite3.Connection,
    dst: psycopg.Connection[Any],
    runs: list[tuple[Any, ...]],
    counts: CopyCounts,
) -> None:
    new_seq: dict[int, int] = {}
    with dst.cursor() as cur:
        cur.executemany(sql.COPY_RUN, [_run_values(row) for row in runs], returning=True)
        for row in runs:
            inserted = cur.fetchone()
            if inserted is not None:
                new_seq[row[0]] = inserted[0]
            if not cur.nextset():
                break
    counts.runs += len(runs)
    counts.runs_copied += len(new_seq)
    marks = ", ".join("?" * len(runs))
    steps = src.execute(
        f"SELECT run_seq, {STEP_COLUMNS} FROM steps WHERE run_seq IN ({marks})",
        [row[0] for row in runs],
    ).fetchall()
    counts.steps += len(steps)
    copied = [(new_seq[s[0]], *s[1:]) for s in steps if s[0] in new_seq]
    if copied:
        with dst.cursor() as cur:
            cur.executemany(sql.COPY_STEP, copied)
    counts.steps_copied += len(copied)


def _run_values(row: tuple[Any, ...]) -> tuple[Any, ...]:
    values = list(row[1:])
    for i in (_CONDITION, _DRY_RUN):
        values[i] = None if values[i] is None else bool(values[i])
    return tuple(values)


def _copy_state(src: sqlite3.Connection, dst: psycopg.Connection[Any], counts: CopyCounts) -> None:
    rows = src.execute("SELECT scope, key, value FROM state ORDER BY scope, key").fetchall()
    counts.state += len(rows)
    with dst.cursor() as cur:
        for row in rows:
            cur.execute(sql.COPY_STATE, row)
            counts.state_copied += cur.rowcount


def _copy_audit(src: sqlite3.Connection, dst: psycopg.Connection[Any], counts: CopyCounts) -> None:
    names = [c.strip() for c in AUDIT_COLUMNS.split(",")]
    rows = src.execute(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq").fetchall()
    counts.audit += len(rows)
    with dst.cursor() as cur:
        for row in rows:
            cur.execute(sql.COPY_AUDIT, dict(zip(names, row, strict=True)))
            counts.audit_copied += cur.rowcount
