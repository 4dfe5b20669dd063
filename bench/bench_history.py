"""`automations runs` filters at a million runs on SQLite and PostgreSQL; pruning gives space back.

    python bench/bench_history.py [--runs 1000000] [--repeats 5] [--only sqlite|postgres]
                                  [--no-prune]

A history of ``--runs`` webhook runs (one step each) over 60 days, 20 recipes, statuses as a
busy install has them (90% succeeded, 5% skipped, 4% failed, 0.9% unknown, 0.1% pending), is
written straight into a fresh store (SQLite file in a temporary folder; PostgreSQL: a schema of
its own on ``AUTOMATIONS_TEST_PG``, dropped afterwards). Then each filter of ``runs``
(``list_runs``, 50 newest, steps included) is timed: median of ``--repeats`` after one warm-up,
and the next page through the keyset cursor. Goal: every filter under 50 ms.

SQLite only: then the runs older than 30 days are pruned (the runner's retention: on a store
thread, with an event loop beside it measuring its own lag, as the runner's does) and the file
and WAL sizes are printed before and after, with that loop's longest lag (``--no-prune`` skips
this).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from automations.ports import Store
from automations.records import RunFilter, RunStatus
from automations.runner.looplag import LoopLag
from automations.stores import SQLiteStore
from automations.stores.thread import StoreThread

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*

DAY = 86400.0
SPAN = 60 * DAY
END = 1_800_000_000.0  # the history ends here (2027-01-15)
START = END - SPAN
RECIPES = 20

_SQLITE_FILL = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
INSERT INTO runs (id, recipe, trigger, event_key, event, created_at, status, recipe_hash,
                  dry_run, started_at, finished_at)
SELECT lower(hex(randomblob(16))), 'recipe-' || (i % 20), 'webhook',
       'user' || i || '@example.com',
       '{"email":"user' || i || '@example.com","firstName":"Ada","plan":"pro"}',
       :start + i * :step,
       CASE WHEN i % 1000 < 900 THEN 'succeeded' WHEN i % 1000 < 950 THEN 'skipped'
            WHEN i % 1000 < 990 THEN 'failed' WHEN i % 1000 < 999 THEN 'unknown'
            ELSE 'pending' END,
       'abcdef0123456789', 0, :start + i * :step, :start + i * :step + 0.2
FROM n
"""
_SQLITE_STEPS = """
INSERT INTO steps (run_seq, idx, step_id, action, status, request, http_status,
                   response_body, attempts)
SELECT seq, 0, 'contact', 'quo.create_contact', 'succeeded',
       '{"method":"POST","url":"https://api.openphone.com/v1/contacts","body":{"email":"x"}}',
       201, '{"data":{"id":"664d0db69fcac7cf2e6ec"}}', 1
FROM runs
"""
_PG_FILL = """
INSERT INTO runs (id, recipe, trigger, event_key, event, created_at, status, recipe_hash,
                  dry_run, started_at, finished_at)
SELECT md5(i::text || %(tag)s), 'recipe-' || (i %% 20), 'webhook', 'user' || i || '@example.com',
       ('{"email":"user' || i || '@example.com","firstName":"Ada","plan":"pro"}')::jsonb,
       %(start)s + i * %(step)s,
       CASE WHEN i %% 1000 < 900 THEN 'succeeded' WHEN i %% 1000 < 950 THEN 'skipped'
            WHEN i %% 1000 < 990 THEN 'failed' WHEN i %% 1000 < 999 THEN 'unknown'
            ELSE 'pending' END,
       'abcdef0123456789', false, %(start)s + i * %(step)s, %(start)s + i * %(step)s + 0.2
FROM generate_series(0, %(count)s - 1) AS i ORDER BY i
"""
_PG_STEPS = """
INSERT INTO steps (run_seq, idx, step_id, action, status, request, http_status,
                   response_body, attempts)
SELECT seq, 0, 'contact', 'quo.create_contact', 'succeeded',
       '{"method":"POST","url":"https://api.openphone.com/v1/contacts","body":{"email":"x"}}',
       201, '{"data":{"id":"664d0db69fcac7cf2e6ec"}}', 1
FROM runs
"""


def filters(count: int) -> list[tuple[str, RunFilter]]:
    key = f"user{count // 2}@example.com"
    return [
        ("(none)", RunFilter()),
        ("--recipe", RunFilter(recipe="recipe-7")),
        ("--status succeeded", RunFilter(status=RunStatus.SUCCEEDED)),
        ("--status failed", RunFilter(status=RunStatus.FAILED)),
        ("--status unknown", RunFilter(status=RunStatus.UNKNOWN)),
        ("--status held (none)", RunFilter(status=RunStatus.HELD)),
        ("--key", RunFilter(key=key)),
        ("--since 1h", RunFilter(since=END - 3600)),
        ("--since 30d", RunFilter(since=END - 30 * DAY)),
        ("--since 45d --until 40d", RunFilter(since=END - 45 * DAY, until=END - 40 * DAY)),
        ("--until 50d", RunFilter(until=END - 50 * DAY)),
        ("--recipe --status failed", RunFilter(recipe="recipe-7", status=RunStatus.FAILED)),
        ("--recipe --status unknown", RunFilter(recipe="recipe-2", status=RunStatus.UNKNOWN)),
        ("--recipe --since 7d", RunFilter(recipe="recipe-7", since=END - 7 * DAY)),
        ("--status failed --since 7d", RunFilter(status=RunStatus.FAILED, since=END - 7 * DAY)),
        (
            "--recipe --status --since --until",
            RunFilter(
                recipe="recipe-3",
                status=RunStatus.FAILED,
                since=END - 20 * DAY,
                until=END - 10 * DAY,
            ),
        ),
        ("--key --recipe", RunFilter(key=key, recipe=f"recipe-{(count // 2) % RECIPES}")),
        ("--recipe (absent)", RunFilter(recipe="no-such-recipe")),
    ]


def timed(call: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    result = call()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(store: Store, count: int, repeats: int) -> bool:
    worst = 0.0
    for label, flt in filters(count):
        seconds, runs = timed(lambda flt=flt: store.list_runs(flt), repeats)
        page = store.list_runs_page(flt)
        line = f"    {label:34} {1000 * seconds:7.2f} ms  ({len(runs):2} runs)"
        worst = max(worst, seconds)
        if page.next is not None:
            nxt = RunFilter(**{**_fields(flt), "before": page.next})
            second, more = timed(lambda nxt=nxt: store.list_runs_page(nxt), repeats)
            line += f"   next page {1000 * second:7.2f} ms ({len(more.runs)} runs)"
            worst = max(worst, second)
        print(line, flush=True)
    ok = worst < 0.05
    print(f"    slowest {1000 * worst:.2f} ms: goal (< 50 ms) {'met' if ok else 'NOT met'}")
    return ok


def _fields(flt: RunFilter) -> dict[str, Any]:
    return {f: getattr(flt, f) for f in flt.__dataclass_fields__}


def sizes(path: Path) -> str:
    db = path.stat().st_size
    wal = Path(f"{path}-wal")
    walsize = wal.stat().st_size if wal.exists() else 0
    return f"file {db / 1e6:7.1f} MB, WAL {walsize / 1e6:6.1f} MB"


def sqlite_bench(opts: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.db"
        with closing(SQLiteStore(path)) as store:
            started = time.perf_counter()
            db = store._db  # the bench writes the history straight into the file
            db.execute("BEGIN")
            db.execute(
                _SQLITE_FILL,
                {"count": opts.runs, "start": START, "step": SPAN / opts.runs},
            )
            db.execute(_SQLITE_STEPS)
            db.execute("COMMIT")
            db.execute("ANALYZE")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            print(
                f"  SQLite, {opts.runs:,} runs written in {time.perf_counter() - started:.1f} s"
                f" ({sizes(path)})",
                flush=True,
            )
            ok = measure(store, opts.runs, opts.repeats)
            if not opts.no_prune:
                before = sizes(path)
                started = time.perf_counter()
                removed, lag = asyncio.run(prune_beside_a_loop(store))
                print(
                    f"  pruned {removed:,} runs older than 30 days in "
                    f"{time.perf_counter() - started:.1f} s: {before} -> {sizes(path)}; an event "
                    f"loop beside it lagged {1000 * lag:.0f} ms at most"
                )
        return ok


async def prune_beside_a_loop(store: SQLiteStore) -> tuple[int, float]:
    """The runner's prune (on a store thread of its own), with an event loop beside it measuring
    its own lag (``LoopLag``) as the runner's does: (runs removed, longest lag in seconds)."""
    lag = LoopLag()
    probe = asyncio.get_running_loop().create_task(lag.run())
    io = StoreThread("store-prune")
    try:
        removed = await io(
            functools.partial(
                store.prune, now=END, keep_succeeded_s=30 * DAY, keep_failed_s=30 * DAY
            )
        )
    finally:
        probe.cancel()
        io.close()
    return removed, lag.max_s


def postgres_bench(opts: argparse.Namespace) -> bool:
    url = os.environ.get("AUTOMATIONS_TEST_PG", "")
    if not url:
        print("  PostgreSQL: skipped (set AUTOMATIONS_TEST_PG; .ci/postgres starts a server)")
        return True
    import psycopg

    from automations.stores import PostgresStore
    from tests.postgres import fresh_schema

    with fresh_schema() as schema_url:
        store = PostgresStore(schema_url)
        try:
            started = time.perf_counter()
            with psycopg.connect(schema_url, autocommit=True) as conn:
                params = {
                    "count": opts.runs,
                    "start": START,
                    "step": SPAN / opts.runs,
                    "tag": uuid.uuid4().hex,
                }
                conn.execute(_PG_FILL, params)
                conn.execute(_PG_STEPS)
                conn.execute("VACUUM ANALYZE runs")
                conn.execute("VACUUM ANALYZE steps")
            took = time.perf_counter() - started
            print(f"  PostgreSQL, {opts.runs:,} runs written in {took:.1f} s", flush=True)
            return measure(store, opts.runs, opts.repeats)
        finally:
            store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--no-prune", action="store_true")
    opts = parser.parse_args()
    opts.runs = min(max(1000, opts.runs), 5_000_000)
    opts.repeats = min(max(1, opts.repeats), 50)
    print(f"runs filters, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    ok = True
    if opts.only in (None, "sqlite"):
        ok = sqlite_bench(opts) and ok
    if opts.only in (None, "postgres"):
        ok = postgres_bench(opts) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
