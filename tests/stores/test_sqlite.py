"""What only the SQLite store promises: a durable, readable, compact file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

from automations.errors import StoreError
from automations.records import RunFilter, RunStatus, StepStatus
from automations.stores import SQLiteStore, open_store
from automations.stores.sqlite_schema import SCHEMA_VERSION
from tests.stores.factories import T0, make_run, make_step, typical_run

pytestmark = pytest.mark.integration


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    store.enqueue(make_run("r1"))
    store.claim("r1", "hash-1")
    store.put_step(make_step("r1", 0))
    store.set_state("table:welcome", [("k", "v")])
    before = store.get_run("r1")
    store.close()

    again = SQLiteStore(path)
    assert again.get_run("r1") == before
    assert again.get_run("r1").status is RunStatus.RUNNING
    assert again.all_state("table:welcome") == {"k": "v"}
    again.close()


def test_the_file_is_plain_readable_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    store.enqueue(make_run("r1", event={"email": "a@example.com", "n": [1, 2]}))
    store.claim("r1", "hash-1")
    store.put_step(make_step("r1", 0, response_body={"ok": True}))
    store.update_run("r1", status=RunStatus.SUCCEEDED, condition=True, finished_at=T0 + 3)
    store.close()

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "steps", "state"} <= tables
    row = db.execute(
        "SELECT id, recipe, trigger, status, event, condition, typeof(created_at), finished_at "
        "FROM runs"
    ).fetchone()
    assert row == (
        "r1",
        "welcome",
        "webhook",
        "succeeded",
        '{"email":"a@example.com","n":[1,2]}',
        1,
        "real",
        T0 + 3,
    )
    step = db.execute(
        "SELECT run_id, idx, step_id, action, status, request, response_body, http_status "
        "FROM step_log"
    ).fetchone()
    assert step == (
        "r1",
        0,
        "step0",
        "loops.send_event",
        "succeeded",
        '{"method":"POST","url":"https://app.loops.so/api/v1/events/send"}',
        '{"ok":true}',
        200,
    )
    db.close()


def test_a_typical_run_costs_little_on_disk(tmp_path: Path) -> None:
    """2,000 typical two-step runs (as the executor records them today), after VACUUM.

    About half is the JSON the engine records (event, requests, responses; the row is stored
    only when ``columns:`` makes it differ from the event); the rest is ids, keys, times,
    indexes and page space. Today: ~1,080 bytes/run, ~670 besides the JSON (schema 7's indexes
    for the runs filters, by recipe, status and both in creation order, cost ~140 of them).
    """
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    runs = 2_000
    with store.transaction():
        for i in range(runs):
            run, steps = typical_run(i, uuid.uuid4().hex)
            store.enqueue(run)
            store.claim(run.id, "3f2a9c1e7b6d5a40")
            store.update_run(run.id, row=None, condition=True)
            for step in steps:
                store.put_step(step)
            store.update_run(run.id, status=RunStatus.SUCCEEDED, finished_at=T0 + 2)
    store.close()
    db = sqlite3.connect(path)
    db.execute("VACUUM")
    (json_bytes,) = db.execute(
        "SELECT (SELECT SUM(LENGTH(event) + COALESCE(LENGTH(row), 0)) FROM runs)"
        " + (SELECT SUM(COALESCE(LENGTH(request), 0)"
        " + COALESCE(LENGTH(response_body), 0)) FROM steps)"
    ).fetchone()
    db.close()
    per_run = path.stat().st_size / runs
    assert per_run - json_bytes / runs <= 750
    assert per_run <= 1_150


def test_a_run_committed_by_a_killed_process_is_there(tmp_path: Path) -> None:
    """Another process writes a run and is SIGKILLed without closing: the run is durable."""
    path = tmp_path / "runs.db"
    script = textwrap.dedent(
        f"""
        import os, signal
        from automations.stores import SQLiteStore
        from tests.stores.factories import make_run, make_step
        store = SQLiteStore({str(path)!r})
        store.enqueue(make_run("from-child"))
        store.put_step(make_step("from-child"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=False
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    # Never checkpointed: the commits are only in the write-ahead log, which opening replays.
    assert (tmp_path / "runs.db-wal").stat().st_size > 0
    store = SQLiteStore(path)
    assert [r.id for r in store.list_runs(RunFilter())] == ["from-child"]
    assert store.get_run("from-child").steps == (make_step("from-child"),)
    store.close()


def test_two_connections_see_each_others_commits(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    writer, reader = SQLiteStore(path), SQLiteStore(path)
    writer.enqueue(make_run("r1"))
    assert reader.get_run("r1").status is RunStatus.PENDING
    writer.put_step(make_step("r1", status=StepStatus.SENDING))
    assert [s.status for s in reader.get_run("r1").steps] == [StepStatus.SENDING]
    # A transaction is invisible to the other connection until it commits.
    with writer.transaction():
        writer.update_run("r1", status=RunStatus.FAILED)
        assert reader.get_run("r1").status is RunStatus.PENDING
    assert reader.get_run("r1").status is RunStatus.FAILED
    writer.close()
    reader.close()


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(50):
                run_id = f"w{worker}-{i}"
                store.enqueue(make_run(run_id))
                store.claim(run_id, "h")
                store.put_step(make_step(run_id))
                store.update_run(run_id, status=RunStatus.SUCCEEDED)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count(RunStatus.SUCCEEDED) == 200
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match=f"has schema version {SCHEMA_VERSION + 1}"):
        SQLiteStore(path)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_text("hello, not sqlite\n" * 100)
    with pytest.raises(
        StoreError, match=r"cannot open run store .*runs\.db: file is not a database"
    ):
        SQLiteStore(path)


def test_a_closed_store_raises_store_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_run("r1")


def test_open_store_creates_the_folder(tmp_path: Path) -> None:
    store = open_store(tmp_path / "deep" / "er" / "runs.db")
    store.enqueue(make_run("r1"))
    store.close()
    assert (tmp_path / "deep" / "er" / "runs.db").is_file()


def test_json_columns_hold_compact_json(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    store.enqueue(make_run("r1", event={"a": [1, {"b": "é"}]}))
    store.close()
    db = sqlite3.connect(path)
    (text,) = db.execute("SELECT event FROM runs").fetchone()
    db.close()
    assert text == '{"a":[1,{"b":"é"}]}'
    assert json.loads(text) == {"a": [1, {"b": "é"}]}
    assert os.path.getsize(path) > 0


def test_runs_by_key_use_indexes_not_a_scan(tmp_path: Path) -> None:
    """``runs --key`` stays instant at a million runs: every branch of the key test is an
    index search (SQLite's multi-index OR), never a scan of ``runs``."""
    from automations.stores.sqlite import _filter_sql

    store = SQLiteStore(tmp_path / "runs.db")
    store.close()
    db = sqlite3.connect(tmp_path / "runs.db")
    where, params = _filter_sql(RunFilter(key="ada@example.com", status=RunStatus.FAILED))
    plan = db.execute(
        f"EXPLAIN QUERY PLAN SELECT seq FROM runs WHERE {where} ORDER BY seq DESC", params
    ).fetchall()
    details = [row[3] for row in plan]
    assert "MULTI-INDEX OR" in details
    assert sum("USING INDEX runs_event_key" in d for d in details) == 2
    assert sum("USING INDEX runs_schedule_key" in d for d in details) == 1
    assert not any(d.startswith("SCAN runs") for d in details)
    db.close()
