"""The gauges read at scrape time from a real SQLite store: the backlog in runs and in requests,
held and unknown runs, and a store that does not answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from automations.errors import StoreError
from automations.metrics import RunnerCollector, StoreCollector
from automations.records import RunStatus
from automations.stores import SQLiteStore
from tests.stores.factories import make_run

pytestmark = pytest.mark.integration

ACTIONS = {"x": ["loops.send_event", "quo.send_sms", "quo.send_sms"], "y": ["http.request"]}


def registry_over(store: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, lambda: ACTIONS))  # type: ignore[arg-type]
    return registry


def test_the_backlog_held_and_unknown_runs_come_from_the_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    statuses = {
        "x": [RunStatus.PENDING] * 3 + [RunStatus.RUNNING, RunStatus.HELD, RunStatus.UNKNOWN],
        "y": [RunStatus.PENDING, RunStatus.HELD, RunStatus.HELD, RunStatus.SUCCEEDED],
    }
    for recipe, wanted in statuses.items():
        for i, status in enumerate(wanted):
            store.enqueue(make_run(f"{recipe}{i}", recipe=recipe))
            if status is not RunStatus.PENDING:
                store.update_run(f"{recipe}{i}", status=status)
    r = registry_over(store)
    assert r.get_sample_value("automations_store_up") == 1
    assert r.get_sample_value("automations_queued_runs", {"recipe": "x"}) == 4
    assert r.get_sample_value("automations_queued_runs", {"recipe": "y"}) == 1
    # 4 runs of x make 4 Loops events and 8 texts; y's run one http request
    assert r.get_sample_value("automations_queued_requests", {"connection": "loops"}) == 4
    assert r.get_sample_value("automations_queued_requests", {"connection": "quo"}) == 8
    assert r.get_sample_value("automations_queued_requests", {"connection": "http"}) == 1
    assert r.get_sample_value("automations_held_runs", {"recipe": "x"}) == 1
    assert r.get_sample_value("automations_held_runs", {"recipe": "y"}) == 2
    assert r.get_sample_value("automations_unknown_runs", {"recipe": "x"}) == 1
    assert r.get_sample_value("automations_unknown_runs", {"recipe": "y"}) is None
    store.close()


class _Locked:
    def unfinished_counts(self) -> dict[str, int]:
        raise StoreError("database is locked")


def test_a_store_that_does_not_answer_says_so_and_shows_no_counts() -> None:
    r = registry_over(_Locked())
    assert r.get_sample_value("automations_store_up") == 0
    assert [m.name for m in r.collect()] == ["automations_store_up"]


def test_the_runner_gauges_say_what_it_does_now() -> None:
    registry = CollectorRegistry()
    registry.register(
        RunnerCollector(
            in_flight=lambda: 3,
            recipes=lambda: 7,
            errors=lambda: 1,
            paused=lambda: {"quo": True, "loops": False},
        )
    )
    values = {
        (s.name, tuple(s.labels.values())): s.value for m in registry.collect() for s in m.samples
    }
    assert values == {
        ("automations_runs_in_flight", ()): 3,
        ("automations_recipes_loaded", ()): 7,
        ("automations_recipe_files_in_error", ()): 1,
        ("automations_connection_paused", ("loops",)): 0,
        ("automations_connection_paused", ("quo",)): 1,
    }
