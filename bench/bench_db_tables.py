"""Database table triggers: how fast rows become recorded runs, how soon one changed row in a
1,000,000-row table is seen, and the memory of a first look at that table.

- ``throughput``: a table of ``ROWS`` rows looked at once with ``existing_rows: run`` (no flood
  brake): rows per second from the table to runs recorded in a SQLite run store (each page's runs
  recorded with ``enqueue_many``, then its per-key state), for a SQLite and a PostgreSQL table.
  Median of ``REPEATS``.
- ``latency``: a 1,000,000-row SQLite table (and PostgreSQL, with a server), activated once; then
  one row is changed and the time of the look that finds it is measured, with and without
  ``changed_by`` (median of ``REPEATS`` changes). A change is seen at most one poll interval
  (default 5 s; at once with ``db notify-sql``) plus this.
- ``memory``: in a fresh process, the peak RSS of the first look (``existing_rows: skip``) at the
  1,000,000-row SQLite table, next to the RSS before it.

The PostgreSQL server is ``AUTOMATIONS_TEST_PG`` (as for the tests); without it the PostgreSQL
figures are left out. Run: ``python bench/bench_db_tables.py [throughput|latency|memory]``.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*

from automations.model import DbTableSpec, ExistingRows, Recipe, TableTrigger
from automations.runner.db_source import _Look
from automations.stores import SQLiteStore
from automations.triggers.table_db import TableConnection, resolve_database
from automations.triggers.table_db_reader import DbTableReader

REPEATS = 3
ROWS = 20_000
BIG = 1_000_000
LEADS = (
    "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT, name TEXT, plan TEXT, "
    "updated_at BIGINT NOT NULL)"
)


def _rows(n: int, start: int = 1) -> Iterator[tuple[Any, ...]]:
    for i in range(start, start + n):
        yield (i, f"lead{i}@example.com", f"Lead {i}", "free", i)


def _sqlite_table(path: Path, n: int) -> str:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(LEADS)
    db.execute("CREATE INDEX leads_changed ON leads (updated_at, id)")
    db.executemany("INSERT INTO leads VALUES (?, ?, ?, ?, ?)", _rows(n))
    db.commit()
    db.close()
    return str(path)


@contextmanager
def _pg_table(n: int) -> Iterator[str | None]:
    if not os.environ.get("AUTOMATIONS_TEST_PG"):
        yield None
        return
    import psycopg

    from tests.postgres import fresh_schema

    with fresh_schema() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(LEADS)
            conn.execute("CREATE INDEX leads_changed ON leads (updated_at, id)")
            with conn.cursor() as cur, cur.copy("COPY leads FROM STDIN") as copy:
                for row in _rows(n):
                    copy.write_row(row)
            conn.execute("ANALYZE leads")
        yield url


def _spec(url: str, **kw: Any) -> DbTableSpec:
    fields: dict[str, Any] = {
        "database": url,
        "table": "leads",
        "key": "id",
        "reads": frozenset({"id", "email", "name", "plan"}),
        "run_on_updated": True,
        "flood_limit": 0,
    }
    fields.update(kw)
    return DbTableSpec(**fields)


def _look(spec: DbTableSpec, store: SQLiteStore, scope: str = "bench") -> tuple[float, int]:
    """One look as the runner makes it, into ``store``: seconds and runs recorded."""
    conn = TableConnection(resolve_database(spec.database, {}), table=spec.table, query=None)
    reader = DbTableReader(spec, conn, store, scope)
    recipe = Recipe("bench", Path("bench.yaml"), "0" * 16, TableTrigger(spec), ())
    recorded = [0]

    def enqueue(runs: list[Any]) -> None:
        store.enqueue_many([run for run, _ in runs])
        recorded[0] += len(runs)

    started = time.perf_counter()
    try:
        _Look(recipe, reader, enqueue).run()
    finally:
        conn.close()
    return time.perf_counter() - started, recorded[0]


def throughput() -> None:
    with tempfile.TemporaryDirectory() as tmp, _pg_table(ROWS) as pg:
        sqlite_url = _sqlite_table(Path(tmp) / "crm.db", ROWS)
        for name, url in (("SQLite", sqlite_url), ("PostgreSQL", pg)):
            if url is None:
                print(f"{name}: skipped (no AUTOMATIONS_TEST_PG)")
                continue
            rates = []
            for i in range(REPEATS):
                store = SQLiteStore(Path(tmp) / f"runs-{name}-{i}.db")
                try:
                    seconds, runs = _look(_spec(url, existing_rows=ExistingRows.RUN), store)
                finally:
                    store.close()
                assert runs == ROWS, runs
                rates.append(runs / seconds)
            median = statistics.median(rates)
            print(
                f"{name} table, {ROWS:,} rows -> recorded runs: median {median:,.0f} rows/s "
                f"({', '.join(f'{r:,.0f}' for r in rates)})"
            )


def _change(url: str, i: int) -> None:
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE leads SET plan = %s, updated_at = %s WHERE id = %s",
                (f"pro{i}", BIG + 10 + i, 500_000 + i),
            )
        return
    db = sqlite3.connect(url)
    db.execute(
        "UPDATE leads SET plan = ?, updated_at = ? WHERE id = ?",
        (f"pro{i}", BIG + 10 + i, 500_000 + i),
    )
    db.commit()
    db.close()


def latency() -> None:
    with tempfile.TemporaryDirectory() as tmp, _pg_table(BIG) as pg:
        sqlite_url = _sqlite_table(Path(tmp) / "crm.db", BIG)
        for name, url in (("SQLite", sqlite_url), ("PostgreSQL", pg)):
            if url is None:
                print(f"{name}: skipped (no AUTOMATIONS_TEST_PG)")
                continue
            for changed_by in ("updated_at", None):
                store = SQLiteStore(Path(tmp) / f"state-{name}-{changed_by}.db")
                spec = _spec(url, changed_by=changed_by)
                try:
                    first, _ = _look(spec, store)
                    times = []
                    for i in range(REPEATS):
                        _change(url, i + (0 if changed_by else 100))
                        seconds, runs = _look(spec, store)
                        assert runs == 1, runs
                        times.append(seconds)
                finally:
                    store.close()
                how = f"changed_by: {changed_by}" if changed_by else "no changed_by (keyed scan)"
                print(
                    f"{name} 1,000,000 rows, {how}: first look {first:.1f} s; one changed row "
                    f"found by a look of median {statistics.median(times) * 1000:,.0f} ms "
                    f"({', '.join(f'{t * 1000:,.0f}' for t in times)})"
                )


def _first_look_rss(url: str, state: str) -> None:
    """In this (fresh) process: the first look at ``url``; prints RSS before and peak (MB)."""
    before = _rss_mb()
    store = SQLiteStore(Path(state))
    try:
        seconds, _ = _look(_spec(url), store)
    finally:
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_mb": round(before, 1), "peak_mb": round(peak, 1), "s": seconds}))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = _sqlite_table(Path(tmp) / "crm.db", BIG)
        out = subprocess.run(
            [sys.executable, __file__, "_first-look", url, str(Path(tmp) / "state.db")],
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"first look at a 1,000,000-row SQLite table: RSS before {found['before_mb']} MB, "
            f"peak {found['peak_mb']} MB ({found['s']:.1f} s)"
        )


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what == "_first-look":
        _first_look_rss(sys.argv[2], sys.argv[3])
    else:
        for name, fn in (("throughput", throughput), ("latency", latency), ("memory", memory)):
            if what in (name, "all"):
                fn()
