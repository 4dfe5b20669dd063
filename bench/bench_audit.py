"""Audit-log throughput and size: how fast the SQLite run store records typical runs.

A typical run is what the engine writes for a two-step recipe (Loops update contact, then Loops
send event) triggered by a webhook: ``enqueue``, ``claim``, ``update_run`` (row, condition), for
each step ``put_step`` twice (``sending``, then ``succeeded``), and ``update_run`` (succeeded):
eight writes. Measured two ways:

- per-run commit: each write is its own commit, as the runner does it ("written before sent");
- batched: ``store.transaction()`` around every 100 runs (one commit per batch), as a bulk import
  or a replay of many runs can do.

Then the size on disk of 10,000 typical runs after a checkpoint and VACUUM, as bytes per run,
for the typical run and for a richer one (Quo SMS with Quo's full message object as response,
a Content-Type header on each request).

Run: ``python bench/bench_audit.py`` (about 30 s). Prints medians of several repeats.
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

from automations.records import RunRecord, RunStatus, StepRecord, StepStatus, TriggerKind
from automations.stores import SQLiteStore

RUNS_PER_REPEAT = 5_000
REPEATS = 5
BATCH = 100
SIZE_RUNS = 10_000
T0 = 1_750_000_000.0


def typical_run(i: int, *, rich: bool = False) -> tuple[RunRecord, list[StepRecord]]:
    """Run ``i`` and its two final steps (keep in step with ``tests/stores/test_sqlite.py``)."""
    run_id = uuid.uuid4().hex
    email = f"user{i:08d}@example.com"
    event = {"email": email, "firstName": "Ada", "plan": "pro"}
    auth = {"Authorization": "Bearer ***"}
    if rich:
        auth = {**auth, "Content-Type": "application/json"}
    run = RunRecord(
        id=run_id,
        recipe="welcome",
        trigger=TriggerKind.WEBHOOK,
        event_key=f"evt_{i:020d}",
        event=event,
        created_at=T0 + i * 0.001,
    )
    contact = StepRecord(
        run_id,
        0,
        "contact",
        "loops.update_contact",
        StepStatus.SUCCEEDED,
        request={
            "method": "PUT",
            "url": "https://app.loops.so/api/v1/contacts/update",
            "headers": auth,
            "body": {"email": email, "firstName": "Ada", "userGroup": "pro"},
        },
        http_status=200,
        response_body={"success": True, "id": "cm1x2y3z4a5b6c7d8e9f0g1h2"},
        attempts=1,
        duration_ms=84.2,
        started_at=T0 + 1.0,
        finished_at=T0 + 1.1,
    )
    second = StepRecord(
        run_id,
        1,
        "welcome_event",
        "loops.send_event",
        StepStatus.SUCCEEDED,
        request={
            "method": "POST",
            "url": "https://app.loops.so/api/v1/events/send",
            "headers": auth,
            "body": {"email": email, "eventName": "welcome"},
        },
        http_status=200,
        response_body={"success": True},
        attempts=1,
        duration_ms=91.7,
        idempotency_key=f"{run_id}:1",
        started_at=T0 + 1.1,
        finished_at=T0 + 1.2,
    )
    if rich:
        phone = f"+1555{i:07d}"
        second = StepRecord(
            run_id,
            1,
            "sms",
            "quo.send_sms",
            StepStatus.SUCCEEDED,
            request={
                "method": "POST",
                "url": "https://api.openphone.com/v1/messages",
                "headers": auth,
                "body": {"content": "Hi Ada, welcome!", "from": "+15555550100", "to": [phone]},
            },
            http_status=202,
            response_body={
                "data": {
                    "id": "AC3700e624833f4b3fa0e4f0e4d4f3fa",
                    "to": [phone],
                    "from": "+15555550100",
                    "text": "Hi Ada, welcome!",
                    "phoneNumberId": "PNabc123",
                    "direction": "outgoing",
                    "userId": "USabc123",
                    "status": "queued",
                    "createdAt": "2025-06-01T00:00:00Z",
                    "updatedAt": "2025-06-01T00:00:00Z",
                }
            },
            attempts=1,
            duration_ms=211.5,
            started_at=T0 + 1.1,
            finished_at=T0 + 1.3,
        )
    return run, [contact, second]


def record_run(store: SQLiteStore, run: RunRecord, steps: list[StepRecord]) -> None:
    """The writes the engine makes for one run, in its order."""
    store.enqueue(run)
    store.claim(run.id, "3f2a9c1e7b6d5a40")
    store.update_run(run.id, row=run.event, condition=True)
    for step in steps:
        store.put_step(
            StepRecord(
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
        )
        store.put_step(step)
    store.update_run(run.id, status=RunStatus.SUCCEEDED, finished_at=T0 + 2.0)


def fresh_store(folder: Path, name: str) -> SQLiteStore:
    path = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return SQLiteStore(path)


def runs_per_second(folder: Path, write: Callable[[SQLiteStore, list[tuple]], None]) -> float:
    runs = [typical_run(i) for i in range(RUNS_PER_REPEAT)]
    store = fresh_store(folder, "speed")
    try:
        start = time.perf_counter()
        write(store, runs)
        elapsed = time.perf_counter() - start
    finally:
        store.close()
    return RUNS_PER_REPEAT / elapsed


def per_run_commit(store: SQLiteStore, runs: list[tuple]) -> None:
    for run, steps in runs:
        record_run(store, run, steps)


def batched(store: SQLiteStore, runs: list[tuple]) -> None:
    for start in range(0, len(runs), BATCH):
        with store.transaction():
            for run, steps in runs[start : start + BATCH]:
                record_run(store, run, steps)


def bytes_per_run(folder: Path, *, rich: bool) -> tuple[float, float]:
    """(file bytes per run, JSON text bytes per run) for ``SIZE_RUNS`` runs after VACUUM."""
    store = fresh_store(folder, "size")
    with store.transaction():
        for i in range(SIZE_RUNS):
            record_run(store, *typical_run(i, rich=rich))
    path = store.path
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    json_bytes = db.execute(
        "SELECT (SELECT SUM(LENGTH(event) + LENGTH(row)) FROM runs)"
        " + (SELECT SUM(LENGTH(request) + LENGTH(response_body)) FROM steps)"
    ).fetchone()[0]
    db.close()
    return Path(path).stat().st_size / SIZE_RUNS, json_bytes / SIZE_RUNS


def main() -> int:
    print(f"sqlite {sqlite3.sqlite_version}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        single = [runs_per_second(folder, per_run_commit) for _ in range(REPEATS)]
        grouped = [runs_per_second(folder, batched) for _ in range(REPEATS)]
        single_med, grouped_med = statistics.median(single), statistics.median(grouped)
        print(f"per-run commit (8 commits/run): {single_med:8,.0f} runs/s  (median of {REPEATS})")
        print(f"batched, {BATCH} runs/commit:     {grouped_med:8,.0f} runs/s  (median of {REPEATS})")
        print(f"batched / per-run commit:        {grouped_med / single_med:8.1f}x")
        for rich in (False, True):
            size, json_size = bytes_per_run(folder, rich=rich)
            label = "rich (Quo full response)" if rich else "typical"
            print(
                f"{label:>24}: {size:6.0f} bytes/run on disk "
                f"({json_size:.0f} of JSON text, {size - json_size:.0f} of columns, indexes, pages)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
