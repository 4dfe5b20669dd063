"""The PostgreSQL store beside the SQLite store, in the same run: how fast each records runs.

Two measures per store, each the median of several repeats:

- intake: ``enqueue_many`` of 50 webhook runs per call (what the runner's group commit does),
  in runs per second;
- a typical run's writes, each its own commit as the executor makes them ("written before
  sent"): ``enqueue``, ``claim``, ``put_step`` twice per step of two steps, ``update_run``:
  7 writes, in runs per second.

The server is ``AUTOMATIONS_TEST_PG`` (as for the tests; ``.ci/postgres`` starts one). Its
durability settings decide most of the PostgreSQL figures: a test server with ``fsync=off``
says little about a production one. Run: ``python bench/bench_postgres_store.py``.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from automations.ports import Store
from automations.records import RunStatus, StepStatus
from automations.stores import PostgresStore, SQLiteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*
from tests.postgres import fresh_schema
from tests.stores.factories import typical_run

REPEATS = 5
INTAKE_RUNS = 2_000
TYPICAL_RUNS = 300


def intake(store: Store) -> float:
    tag = uuid.uuid4().hex[:8]
    runs = [typical_run(i, f"{tag}-{i}")[0] for i in range(INTAKE_RUNS)]
    start = time.perf_counter()
    for n in range(0, INTAKE_RUNS, 50):
        store.enqueue_many(runs[n : n + 50])
    return INTAKE_RUNS / (time.perf_counter() - start)


def typical(store: Store) -> float:
    tag = uuid.uuid4().hex[:8]
    start = time.perf_counter()
    for i in range(TYPICAL_RUNS):
        run, steps = typical_run(i, f"{tag}-t{i}")
        run = dataclasses.replace(run, event_key=f"{tag}-{run.event_key}")
        store.enqueue(run)
        store.claim(run.id, "hash")
        for step in steps:
            store.put_step(dataclasses.replace(step, status=StepStatus.SENDING))
            store.put_step(step)
        store.update_run(run.id, status=RunStatus.SUCCEEDED)
    return TYPICAL_RUNS / (time.perf_counter() - start)


def median(fn: Callable[[Store], float], store: Store) -> float:
    return statistics.median(fn(store) for _ in range(REPEATS))


def main() -> None:
    if not os.environ.get("AUTOMATIONS_TEST_PG"):
        sys.exit("set AUTOMATIONS_TEST_PG to a postgresql:// URL (a test server)")
    with tempfile.TemporaryDirectory() as tmp, fresh_schema() as url:
        sqlite: Store = SQLiteStore(Path(tmp) / "runs.db")
        postgres: Store = PostgresStore(url)
        try:
            for name, fn in (("intake (enqueue_many of 50)", intake), ("typical run", typical)):
                s, p = median(fn, sqlite), median(fn, postgres)
                print(
                    f"{name:28} sqlite {s:9,.0f} runs/s   postgres {p:9,.0f} runs/s   "
                    f"postgres/sqlite {p / s:.2f}"
                )
        finally:
            sqlite.close()
            postgres.close()


if __name__ == "__main__":
    main()
