"""A run database of 1,000,000 runs, as a busy runner leaves it after 90 days: what the console
and ``/metrics`` benches read.

Eight recipes (six table recipes keyed by e-mail, a webhook one keyed by event id, a schedule
over a table); 72% succeeded, 20% skipped, 6% failed, 0.1% unknown, 200 held, over 90 days,
then a burst of 20,000 pending recorded in the last half hour (the backlog); one step per run
that got past its condition (a Quo SMS or a Loops event, with its request and answer as the
executor records them). Written straight into the
file the store created (the store's own writes would take minutes), then ``ANALYZE``d.

``python bench/million.py PATH`` builds it (about a minute); the benches call ``ensure(path)``,
which builds it once and reuses it while its schema version is current.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
from pathlib import Path

from automations.stores import SQLiteStore
from automations.stores.sqlite_schema import SCHEMA_VERSION

__all__ = ["PENDING", "RECIPES", "RUNS", "build", "ensure", "sample_key"]

RUNS = 1_000_000
PENDING = 20_000
HELD = 200
RECIPES = (
    "leads-to-loops",
    "signup-sms",
    "renewal-reminder",
    "trial-ending",
    "vip-welcome",
    "churn-survey",
    "stripe-payments",
    "daily-digest",
)
_ACTIONS = {
    "leads-to-loops": "loops.send_event",
    "signup-sms": "quo.send_sms",
    "renewal-reminder": "quo.send_sms",
    "trial-ending": "loops.send_event",
    "vip-welcome": "quo.send_sms",
    "churn-survey": "loops.send_event",
    "stripe-payments": "http.request",
    "daily-digest": "loops.send_event",
}


def sample_key(i: int) -> str:
    """The e-mail address of the ``i``-th person (400,000 people)."""
    return f"user{i % 400_000}@example.com"


def _status(rng: random.Random, i: int) -> str:
    if i >= RUNS - PENDING:
        return "pending"
    x = rng.random()
    if x < 0.72:
        return "succeeded"
    if x < 0.92:
        return "skipped"
    if x < 0.98:
        return "failed"
    if x < 0.981:
        return "unknown"
    return "succeeded"


def build(path: Path) -> None:
    SQLiteStore(path).close()  # the schema, with every migration
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    rng = random.Random(7)
    now = time.time()
    held = set(rng.sample(range(RUNS - PENDING - 50_000, RUNS - PENDING), HELD))
    batch_runs: list[tuple[object, ...]] = []
    batch_steps: list[tuple[object, ...]] = []
    for i in range(RUNS):
        recipe = RECIPES[i % len(RECIPES)]
        email = sample_key(i)
        if i < RUNS - PENDING:  # 90 days of history, up to half an hour ago
            created = now - 1800 - (RUNS - PENDING - i) * 7.776
        else:  # then a burst: the backlog recorded over the last half hour
            created = now - (RUNS - i) * 0.09
        if recipe == "stripe-payments":
            trigger, key = "webhook", f"evt_{i:024x}"
        elif recipe == "daily-digest":
            fire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
            trigger, key = "schedule", f"{fire}:{email}"
        else:
            trigger, key = "table", f"{email}@{i:016x}"
        status = "held" if i in held else _status(rng, i)
        event = json.dumps({"email": email, "name": f"Lead {i}", "phone": f"+1555{i % 10**7:07d}"})
        final = status not in ("pending", "held")
        error = None
        if status == "failed":
            error = "send: Quo refused with 400: invalid phone number (1 attempt)"
        elif status == "unknown":
            error = "send: Quo gave no answer (ReadTimeout) after POST /v1/messages was sent"
        batch_runs.append(
            (
                f"{i:032x}",
                recipe,
                trigger,
                key,
                event,
                created,
                status,
                0 if status == "skipped" else 1,
                error,
                created + 0.05 if final else None,
                created + 0.4 if final else None,
            )
        )
        if status in ("succeeded", "failed", "unknown"):
            action = _ACTIONS[recipe]
            request = json.dumps(
                {
                    "method": "POST",
                    "url": "https://api.example.test/v1/send",
                    "body": {"to": "+1555•••••••", "email": email, "event": "signup"},
                }
            )
            http = {"succeeded": 202, "failed": 400, "unknown": None}[status]
            batch_steps.append(
                (
                    i + 1,
                    0,
                    "send",
                    action,
                    status,
                    request,
                    http,
                    json.dumps({"id": f"msg_{i}"}) if http == 202 else None,
                    1,
                    350.0,
                    error,
                    created + 0.05,
                    created + 0.4,
                )
            )
        if len(batch_runs) >= 50_000:
            _flush(db, batch_runs, batch_steps)
    _flush(db, batch_runs, batch_steps)
    db.execute("ANALYZE")
    db.commit()
    db.close()


def _flush(
    db: sqlite3.Connection, runs: list[tuple[object, ...]], steps: list[tuple[object, ...]]
) -> None:
    db.executemany(
        "INSERT INTO runs (id, recipe, trigger, event_key, event, created_at, status, condition, "
        "error, started_at, finished_at, dry_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        runs,
    )
    db.executemany(
        "INSERT INTO steps (run_seq, idx, step_id, action, status, request, http_status, "
        "response_body, attempts, duration_ms, error, started_at, finished_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        steps,
    )
    db.commit()
    runs.clear()
    steps.clear()


def ensure(path: Path) -> Path:
    """``path`` built once (kept while its schema is current: a new migration rebuilds it)."""
    marker = path.with_suffix(f".v{SCHEMA_VERSION}.done")
    if not (path.exists() and marker.exists()):
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        started = time.perf_counter()
        build(path)
        marker.write_text("built\n")
        print(f"built {RUNS:,} runs in {time.perf_counter() - started:.0f} s: {path}")
    return path


if __name__ == "__main__":
    ensure(Path(sys.argv[1]))
