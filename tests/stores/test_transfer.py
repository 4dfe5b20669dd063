"""``db copy``: a SQLite history moved into PostgreSQL, exactly, and a second copy adds only
what is new."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from automations.errors import StoreError
from automations.records import AuditEntry, RunFilter, RunStatus, StepStatus
from automations.stores import PostgresStore, SQLiteStore
from automations.stores.transfer import CopyCounts, copy_sqlite_to_postgres
from tests.postgres import fresh_schema
from tests.stores.factories import T0, make_run, make_step, typical_run

pytestmark = pytest.mark.integration
ALL = RunFilter(limit=1 << 62)


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def history(path: Path, runs: int = 1203) -> Path:
    """``runs`` two-step runs (more than two copy batches), plus a run of each kind of edge:
    a condition false, a dry run, an unknown SMS resolved by hand and replayed, a held run."""
    store = SQLiteStore(path)
    try:
        with store.transaction():
            for i in range(runs):
                run, steps = typical_run(i, f"run-{i:05d}", rich=i % 2 == 1)
                store.enqueue(dataclasses.replace(run, status=RunStatus.SUCCEEDED))
                for step in steps:
                    store.put_step(step)
        store.enqueue(make_run("skip", status=RunStatus.SKIPPED))
        store.update_run("skip", condition=False, recipe_hash="h1")
        store.enqueue(make_run("dry", event={"email": "é@example.com", "n": [1, 2.5, None]}))
        store.update_run("dry", dry_run=True, condition=True, status=RunStatus.SUCCEEDED)
        store.enqueue(make_run("sms", status=RunStatus.UNKNOWN))
        store.put_step(
            dataclasses.replace(make_step("sms", status=StepStatus.UNKNOWN), resolution="sent")
        )
        store.enqueue(make_run("sms-2"))
        store.update_run("sms", replayed_as="sms-2")
        store.update_run("sms-2", replay_of="sms")
        store.enqueue(make_run("held", recipe="flood", status=RunStatus.HELD))
        store.set_state("table:welcome", [("a@example.com", "h1"), ("b@example.com", "h2")])
        store.set_state("versions", [("h1", '{"name": "welcome"}')])
        store.add_audit(AuditEntry(T0, "ada", "resolve", "sms", 0, {"outcome": "sent"}))
        store.add_audit(AuditEntry(T0 + 1, "ada", "replay", "sms", None, {"replay": "sms-2"}))
    finally:
        store.close()
    return path


def test_a_sqlite_history_arrives_whole_and_unchanged(tmp_path: Path, pg: str) -> None:
    source = history(tmp_path / "runs.db")
    counts = copy_sqlite_to_postgres(source, pg)
    assert counts == CopyCounts(
        runs=1208, runs_copied=1208, steps=2407, steps_copied=2407,
        state=3, state_copied=3, audit=2, audit_copied=2,
    )  # fmt: skip
    sqlite, postgres = SQLiteStore(source), PostgresStore(pg)
    try:
        assert postgres.list_runs(ALL) == sqlite.list_runs(ALL)
        assert postgres.audit_log(limit=10) == sqlite.audit_log(limit=10)
        for scope in ("table:welcome", "versions"):
            assert postgres.all_state(scope) == sqlite.all_state(scope)
        assert postgres.count_by_recipe(RunStatus.HELD) == {"flood": 1}
        assert postgres.unfinished() == sqlite.unfinished()
        # the copy is a working store: new runs follow the copied ones
        newest = max(r.created_at for r in sqlite.list_runs(ALL))
        postgres.enqueue(make_run("after", created_at=newest + 1))
        assert postgres.list_runs(RunFilter(limit=1))[0].id == "after"
    finally:
        sqlite.close()
        postgres.close()


def test_copying_again_adds_only_what_is_new(tmp_path: Path, pg: str) -> None:
    source = history(tmp_path / "runs.db", runs=3)
    copy_sqlite_to_postgres(source, pg)
    again = copy_sqlite_to_postgres(source, pg)
    assert again == CopyCounts(runs=8, steps=7, state=3, audit=2)
    assert again.lines() == [
        "runs: 0 copied, 8 already there",
        "steps: 0 copied, 7 already there",
        "state: 0 copied, 3 already there",
        "audit: 0 copied, 2 already there",
    ]
    sqlite = SQLiteStore(source)
    try:
        sqlite.enqueue(make_run("late", steps=(make_step("late"),)))
        sqlite.set_state("table:welcome", [("c@example.com", "h3")])
    finally:
        sqlite.close()
    third = copy_sqlite_to_postgres(source, pg)
    assert third == CopyCounts(
        runs=9, runs_copied=1, steps=8, steps_copied=1, state=4, state_copied=1, audit=2
    )
    postgres = PostgresStore(pg)
    try:
        assert postgres.count() == 9
        assert postgres.get_run("late").steps == (make_step("late"),)
    finally:
        postgres.close()


def test_a_missing_source_is_an_error(tmp_path: Path, pg: str) -> None:
    with pytest.raises(StoreError, match="no run database at"):
        copy_sqlite_to_postgres(tmp_path / "nope.db", pg)
