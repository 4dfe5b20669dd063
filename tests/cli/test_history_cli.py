"""``runs`` over a time range, and ``db migrate`` rewriting an old SQLite file once so that it
gives space back when runs are pruned (the real command line, a real SQLite file)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from automations.records import RunStatus
from automations.stores import SQLiteStore
from automations.stores.sqlite_schema import migrate
from tests.stores.factories import T0, make_run

pytestmark = pytest.mark.acceptance
Cli = Callable[..., subprocess.CompletedProcess[str]]
HOUR = 3600.0


def test_runs_until_and_since_list_a_time_range_newest_first(cli: Cli, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "automations.db")
    try:
        for i in range(6):
            store.enqueue(
                make_run(f"run-{i}", created_at=T0 + i * HOUR, status=RunStatus.SUCCEEDED)
            )
    finally:
        store.close()
    since = "2025-06-15T16:06:40+00:00"  # T0 + 1 h
    until = "2025-06-15T19:06:40+00:00"  # T0 + 4 h
    res = cli("runs", "--since", since, "--until", until, "--format", "json")
    assert res.returncode == 0, res.stderr
    assert [r["id"] for r in json.loads(res.stdout)] == ["run-3", "run-2", "run-1"]
    res = cli("runs", "--until", until, "--limit", "2", "--format", "json")
    assert [r["id"] for r in json.loads(res.stdout)] == ["run-3", "run-2"]
    bad = cli("runs", "--until", "next tuesday")
    assert bad.returncode == 2
    assert "'next tuesday': use a date (2026-11-01), an ISO time, or a duration" in bad.stderr


def test_db_migrate_rewrites_an_old_file_once_to_give_space_back(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    migrate(db, str(path))  # then back to schema 6, as an older automations made it
    db.execute("PRAGMA user_version = 6")
    db.execute("DROP INDEX runs_recipe_created")
    db.execute("DROP INDEX runs_status_created")
    db.execute("DROP INDEX runs_recipe_status_created")
    db.execute("CREATE INDEX runs_recipe ON runs (recipe)")
    db.close()

    res = cli("db", "migrate", "--db", "old.db")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == (
        "old.db: schema upgraded from version 6 to 7\n"
        "old.db: rewritten once to give space back when runs are pruned\n"
    )
    again = cli("db", "migrate", "--db", "old.db")
    assert again.stdout == "old.db: schema version 7, up to date\n"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    db.close()
