"""An existing run database is upgraded in place: nothing recorded is lost or changed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from automations.records import AuditEntry, RunFilter, RunStatus, StepStatus
from automations.stores import SQLiteStore
from automations.stores.sqlite_schema import SCHEMA_VERSION

pytestmark = pytest.mark.integration

V1_DUMP = Path(__file__).parent / "data" / "schema_v1.sql"


def v1_database(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(V1_DUMP.read_text("utf-8"))
    db.close()
    return path


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_the_fixture_is_a_version_1_database(tmp_path: Path) -> None:
    path = v1_database(tmp_path / "v1.db")
    assert rows(path, "PRAGMA user_version") == [(1,)]
    assert rows(path, "SELECT COUNT(*) FROM runs") == [(5,)]


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = v1_database(tmp_path / "v1.db")
    before = rows(path, "SELECT * FROM runs ORDER BY seq")
    steps_before = rows(path, "SELECT * FROM steps ORDER BY run_seq, idx")
    state_before = rows(path, "SELECT * FROM state ORDER BY scope, key")

    store = SQLiteStore(path)
    runs = {r.event_key: r for r in store.list_runs(RunFilter(limit=100))}
    by_key = store.list_runs(RunFilter(key="evt-402"))
    store.close()

    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(7,)]
    # version 5: held and unknown runs counted from their own index, not a scan of every run
    plan = rows(
        path,
        "EXPLAIN QUERY PLAN SELECT recipe, COUNT(*) FROM runs WHERE status = 'unknown' "
        "AND status IN ('held', 'unknown') GROUP BY recipe",
    )
    assert "COVERING INDEX runs_attention" in str(plan)
    store = SQLiteStore(path)
    assert store.count_by_recipe(RunStatus.UNKNOWN) == {"lead": 1}
    store.close()
    # version 6: the claim columns, without a lease on any run
    assert rows(path, "SELECT DISTINCT order_key, lease_owner, lease_token FROM runs") == [
        (None, None, 0)
    ]
    # version 4: the runs of one event are found by key (an index search)
    assert [r.event_key for r in by_key] == ["evt-402"]
    indexes = {
        name for (name,) in rows(path, "SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert {"runs_event_key", "runs_schedule_key"} <= indexes
    # version 7: the runs filters' indexes, in the order listed (runs_recipe is in two of them)
    assert {"runs_recipe_created", "runs_status_created", "runs_recipe_status_created"} <= indexes
    assert "runs_recipe" not in indexes
    # every old column keeps its value; the new ones come after them
    after = rows(path, "SELECT * FROM runs ORDER BY seq")
    assert [r[:16] for r in after] == before
    assert [r[:15] for r in rows(path, "SELECT * FROM steps ORDER BY run_seq, idx")] == (
        steps_before
    )
    assert rows(path, "SELECT * FROM state ORDER BY scope, key") == state_before
    assert rows(path, "SELECT COUNT(*) FROM audit") == [(0,)]
    # version 3: the dispatcher's index of each recipe's backlog
    assert rows(path, "SELECT name FROM sqlite_master WHERE name = 'runs_backlog'") == [
        ("runs_backlog",)
    ]

    # the replay recorded before points back from its original; a dry-run replay does not
    assert set(runs) == {"evt-ok", "evt-402", "evt-402#replay-1", "evt-lost", "evt-lost#replay-1"}
    assert runs["evt-402"].replayed_as == runs["evt-402#replay-1"].id
    assert runs["evt-402#replay-1"].replay_of == runs["evt-402"].id
    assert runs["evt-lost"].replayed_as is None
    assert runs["evt-lost#replay-1"].dry_run is True
    assert runs["evt-ok"].replayed_as is None
    lost = runs["evt-lost"]
    assert lost.status is RunStatus.UNKNOWN
    assert [(s.status, s.resolution) for s in lost.steps] == [
        (StepStatus.SUCCEEDED, None),
        (StepStatus.UNKNOWN, None),
    ]


def test_an_upgraded_database_takes_the_new_records(tmp_path: Path) -> None:
    path = v1_database(tmp_path / "v1.db")
    store = SQLiteStore(path)
    lost = next(r for r in store.list_runs(RunFilter(limit=100)) if r.event_key == "evt-lost")
    entry = AuditEntry(at=1.0, actor="ops", action="resolve", run_id=lost.id, step_index=1)
    store.add_audit(entry)
    store.update_run(lost.id, replayed_as="r-new")
    store.close()

    again = SQLiteStore(path)  # opening an up-to-date file changes nothing
    assert again.audit_log(lost.id) == [entry]
    assert again.get_run(lost.id).replayed_as == "r-new"
    again.close()
