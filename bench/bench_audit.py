"""Audit-log throughput and size: how fast the SQLite run store records typical runs.

A typical run is a two-step recipe (Loops update contact, then Loops send event) triggered by a
webhook. Two write sequences are timed:

- the brief's: ``enqueue``, ``claim``, per step ``put_step`` twice (``sending``, then
  ``succeeded``), ``update_run`` (succeeded): 7 writes;
- the executor's (automations/execution/executor.py): the same plus ``update_run(row=...,
  condition=...)`` after the claim and a final ``get_run``: 8 writes and a read.

Each is measured two ways: per-run commit (every write is its own commit, as the runner needs for
"written before sent") and batched (``store.transaction()`` around every 100 runs, one commit
per batch, for bulk imports and replays).

Then the size on disk of 10,000 runs after a checkpoint and VACUUM, in bytes per run, for the
typical run and for a richer one whose second step is a Quo SMS answered with Quo's full message
object. Requests carry no connection headers (the executor records only an http.request's own
headers), and the row is not stored apart from the event (a recipe without ``columns:``).

Run: ``python bench/bench_audit.py`` (about 60 s). Prints medians of several repeats.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from automations.records import RunRecord, RunStatus, StepRecord, StepStatus
from automations.stores import SQLiteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*
from tests.stores.factories import T0, typical_run

RUNS_PER_REPEAT = 5_000
REPEATS = 5
BATCH = 100
RECIPE_HASH = "3f2a9c1e7b6d5a40"
SIZE_RUNS = 10_000


def sending(step: StepRecord) -> StepRecord:
    """The write made just before the step's request leaves."""
    return StepRecord(
        step.run_id,
        step.index,
        step.step_id,
        step.action,
        StepStatus.SENDING,
        request=step.request,
        attempts=1,
        idempotency_key=step.idempotency_key,
        started_at=step.started_at,
    )


def brief_sequence(store: SQLiteStore, run: RunRecord, steps: list[StepRecord]) -> None:
    store.enqueue(run)
    store.claim(run.id, RECIPE_HASH)
    for step in steps:
        store.put_step(sending(step))
        store.put_step(step)
    store.update_run(run.id, status=RunStatus.SUCCEEDED, finished_at=T0 + 2.0)


def executor_sequence(store: SQLiteStore, run: RunRecord, steps: list[StepRecord]) -> None:
    """What the executor writes for a run (a Loops update and a keyed Loops event: both
    resend-safe, so no "sending" mark; the row is not stored apart from the event)."""
    store.enqueue(run)
    store.claim(run.id, RECIPE_HASH)
    store.update_run(run.id, row=None, condition=True, dry_run=False)
    for step in steps:
        store.put_step(step)
    store.update_run(run.id, status=RunStatus.SUCCEEDED, error=None, finished_at=T0 + 2.0)


def fresh_store(folder: Path, name: str) -> SQLiteStore:
    path = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return SQLiteStore(path)


Sequence = Callable[[SQLiteStore, RunRecord, list[StepRecord]], None]


def runs_per_second(folder: Path, sequence: Sequence, *, batch: int) -> tuple[float, float]:
    """Runs recorded per second of wall time and per second of this process's CPU time (the
    latter moves less when other processes share the machine); ``batch`` runs per commit, or
    0: every write commits."""
    runs = [typical_run(i, uuid.uuid4().hex) for i in range(RUNS_PER_REPEAT)]
    store = fresh_store(folder, "speed")
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        if batch:
            for first in range(0, len(runs), batch):
                with store.transaction():
                    for run, steps in runs[first : first + batch]:
                        sequence(store, run, steps)
        else:
            for run, steps in runs:
                sequence(store, run, steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        store.close()
    return RUNS_PER_REPEAT / wall, RUNS_PER_REPEAT / cpu


def medians(folder: Path, sequence: Sequence, *, batch: int) -> tuple[float, float]:
    results = [runs_per_second(folder, sequence, batch=batch) for _ in range(REPEATS)]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def bytes_per_run(folder: Path, *, rich: bool) -> tuple[float, float]:
    """(file bytes per run, JSON text bytes per run) for ``SIZE_RUNS`` runs after VACUUM."""
    store = fresh_store(folder, "size")
    with store.transaction():
        for i in range(SIZE_RUNS):
            executor_sequence(store, *typical_run(i, uuid.uuid4().hex, rich=rich))
    path = store.path
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    json_bytes = db.execute(
        "SELECT (SELECT SUM(LENGTH(event) + COALESCE(LENGTH(row), 0)) FROM runs)"
        " + (SELECT SUM(COALESCE(LENGTH(request), 0)"
        " + COALESCE(LENGTH(response_body), 0)) FROM steps)"
    ).fetchone()[0]
    db.close()
    return Path(path).stat().st_size / SIZE_RUNS, json_bytes / SIZE_RUNS


def main() -> int:
    print(f"sqlite {sqlite3.sqlite_version}, python {sys.version.split()[0]}")
    print(f"runs/s (wall clock; [per CPU second]), median of {REPEATS} x {RUNS_PER_REPEAT:,}:")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, sequence in (("brief", brief_sequence), ("executor", executor_sequence)):
            single, single_cpu = medians(folder, sequence, batch=0)
            grouped, grouped_cpu = medians(folder, sequence, batch=BATCH)
            print(
                f"  {name:>8} sequence: per-run commit {single:6,.0f} [{single_cpu:6,.0f}]   "
                f"batched ({BATCH}/commit) {grouped:6,.0f} [{grouped_cpu:6,.0f}]   "
                f"ratio {grouped / single:4.1f}x"
            )
        print(f"bytes/run on disk, {SIZE_RUNS:,} runs after checkpoint + VACUUM:")
        for rich in (False, True):
            size, json_size = bytes_per_run(folder, rich=rich)
            label = "rich (Quo SMS)" if rich else "typical"
            print(
                f"  {label:>14}: {size:5.0f}  ({json_size:.0f} of JSON text, "
                f"{size - json_size:.0f} of other columns, indexes and page space)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
