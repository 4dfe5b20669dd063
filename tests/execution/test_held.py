"""approve / discard: the operator's decision about held runs (the functions the CLI calls)."""

from __future__ import annotations

from pathlib import Path

import pytest

from automations.execution.held import DISCARD_NOTE, approve, decisions, discard
from automations.records import RunStatus
from automations.stores import MemoryStore, SQLiteStore
from tests.stores.factories import T0, make_run


@pytest.fixture(params=["memory", pytest.param("sqlite", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore | SQLiteStore:
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "runs.db")


def _hold(store: MemoryStore | SQLiteStore, n: int, recipe: str = "leads") -> None:
    store.enqueue_many(
        [make_run(f"{recipe}-{i}", recipe=recipe, status=RunStatus.HELD) for i in range(n)]
    )


def test_approve_releases_held_runs_and_counts_the_decision(
    store: MemoryStore | SQLiteStore,
) -> None:
    _hold(store, 3)
    _hold(store, 2, "other")
    assert decisions(store) == 0
    assert approve(store, "leads") == 3
    assert [r.id for r in store.unfinished()] == ["leads-0", "leads-1", "leads-2"]
    assert decisions(store) == 1
    assert store.count_by_recipe(RunStatus.HELD) == {"other": 2}
    # a second approve finds nothing and leaves the marker alone
    assert approve(store, "leads") == 0
    assert decisions(store) == 1


def test_discard_ends_held_runs_never_to_run(store: MemoryStore | SQLiteStore) -> None:
    _hold(store, 3)
    assert discard(store, "leads", now=T0 + 60) == 3
    assert decisions(store) == 1
    assert store.unfinished() == []
    run = store.get_run("leads-1")
    assert (run.status, run.error, run.finished_at) == (RunStatus.DISCARDED, DISCARD_NOTE, T0 + 60)
    assert approve(store, "leads") == 0  # discarded is final
    assert store.count(RunStatus.DISCARDED) == 3


def test_each_decision_is_audited_once_with_its_recipe_and_count(
    store: MemoryStore | SQLiteStore,
) -> None:
    _hold(store, 3)
    _hold(store, 2, recipe="other")
    assert approve(store, "leads", now=T0 + 10) == 3
    assert discard(store, "other", now=T0 + 20) == 2
    assert approve(store, "leads", now=T0 + 30) == 0  # nothing decided: nothing audited
    entries = sorted(store.audit_log(), key=lambda e: e.at)
    assert [(e.at, e.action, e.run_id, e.detail) for e in entries] == [
        (T0 + 10, "approve", None, {"recipe": "leads", "runs": 3}),
        (T0 + 20, "discard", None, {"recipe": "other", "runs": 2}),
    ]
    assert all(e.actor for e in entries)
