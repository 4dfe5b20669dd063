"""The operator's reads at a million runs: ``runs --key`` and ``status``.

Builds a run database of 1,000,000 runs (90% table rows keyed by e-mail, 10% scheduled runs
over a row; two steps each for the most recent 50,000, a backlog of 20,000 pending), written
straight into the SQLite file the store created (the store's own writes would take minutes),
then times, through the store API:

- ``list_runs(RunFilter(key=...))``: what ``automations runs --key EMAIL`` reads;
- ``measure_backlog``: what ``automations status`` and the runner's backlog line read.

Run: ``python bench/bench_operator.py`` (about a minute). Prints medians of 20 calls each.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from automations.execution.backlog import measure_backlog
from automations.records import RunFilter
from automations.stores import SQLiteStore

RUNS = 1_000_000
WITH_STEPS = 50_000
PENDING = 20_000
REPEATS = 20


def build(path: Path) -> None:
    SQLiteStore(path).close()  # the schema, with every migration
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    now = time.time()
    rows = []
    for i in range(RUNS):
        email = f"user{i % 400_000}@example.com"
        scheduled = i % 10 == 0
        trigger = "schedule" if scheduled else "table"
        created = now - (RUNS - i) * 0.01
        fire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
        key = f"{fire}:{email}" if scheduled else f"{email}@{i:016x}"
        status = "pending" if i >= RUNS - PENDING else "succeeded"
        rows.append(
            (f"{i:032x}", f"recipe-{i % 8}", trigger, key, "{}", created, status, 0, created)
        )
    db.executemany(
        "INSERT INTO runs (id, recipe, trigger, event_key, event, created_at, status, dry_run, "
        "started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    steps = []
    first = RUNS - PENDING - WITH_STEPS
    for n, seq in enumerate(range(first + 1, RUNS - PENDING + 1)):
        finished = now - (WITH_STEPS - n) * 0.02  # the last 3,000 ended in the last minute
        for idx, action in enumerate(("quo.create_contact", "quo.send_sms")):
            steps.append(
                (seq, idx, f"s{idx}", action, "succeeded", 200, 1, finished - 0.2, finished)
            )
    db.executemany(
        "INSERT INTO steps (run_seq, idx, step_id, action, status, http_status, attempts, "
        "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        steps,
    )
    db.commit()
    db.execute("ANALYZE")
    db.close()


def median_ms(fn: object) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.db"
        started = time.perf_counter()
        build(path)
        print(f"built {RUNS:,} runs in {time.perf_counter() - started:.1f} s")
        store = SQLiteStore(path)
        emails = [f"user{random.randrange(400_000)}@example.com" for _ in range(REPEATS)]
        found = [len(store.list_runs(RunFilter(key=e))) for e in emails]
        it = iter(emails * 2)
        ms = median_ms(lambda: store.list_runs(RunFilter(key=next(it))))
        print(f"runs --key EMAIL: median {ms:.2f} ms ({statistics.median(found):.0f} runs each)")
        actions = {f"recipe-{i}": ["quo.create_contact", "quo.send_sms"] for i in range(8)}
        backlog = measure_backlog(store, time.time(), actions)
        ms = median_ms(lambda: measure_backlog(store, time.time(), actions))
        queued = sum(line.queued for line in backlog.recipes)
        sent = sum(line.sent_last_minute for line in backlog.recipes)
        print(f"status: median {ms:.1f} ms ({queued:,} queued, {sent:,} sent in the last minute)")
        store.close()


if __name__ == "__main__":
    main()
