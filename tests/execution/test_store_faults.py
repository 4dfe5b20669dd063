"""Store errors during a run (disk full, a lock held past the busy timeout): nothing is sent
twice, nothing is abandoned. Before a request leaves, the run stops (the dispatcher tries it
again later); once a request went out, its outcome is written again until the store takes it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from automations.errors import StoreError
from automations.execution import executor as executor_module
from automations.execution.executor import Executor, new_run
from automations.records import RunRecord, RunStatus, StepRecord, StepStatus, TriggerKind
from automations.stores import MemoryStore
from tests.execution.conftest import ROW, Harness

FULL = StoreError("run store runs.db: database or disk is full")


class FlakyStore(MemoryStore):
    """Fails the next ``failures[(method, step status)]`` calls of that kind."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[tuple[str, str | None], int] = {}
        self.failed = 0

    def _maybe_fail(self, what: str, status: str | None) -> None:
        left = self.failures.get((what, status), 0)
        if left:
            self.failures[(what, status)] = left - 1
            self.failed += 1
            raise FULL

    def claim(self, run_id: str, recipe_hash: str, **fields: object) -> RunRecord | None:
        self._maybe_fail("claim", None)
        return super().claim(run_id, recipe_hash, **fields)

    def put_step(self, step: StepRecord) -> None:
        self._maybe_fail("put_step", step.status.value)
        super().put_step(step)


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor_module, "FLUSH_BACKOFF_S", 0.001)


@pytest.fixture
def flaky(harness: Harness) -> Iterator[FlakyStore]:
    store = FlakyStore()
    harness.store = store
    yield store


def execute(harness: Harness) -> RunRecord:
    async def go() -> RunRecord:
        async with harness.connections() as conns:
            run = (
                harness.store.find_run(harness.recipe.name, "k1")
                or harness.store.enqueue(
                    new_run(harness.recipe.name, TriggerKind.MANUAL, "k1", ROW)
                )[0]
            )
            return await Executor(harness.store, conns, harness.env).execute(run, harness.recipe)

    return asyncio.run(go())


def test_an_outcome_write_that_fails_is_written_again_not_lost(
    harness: Harness, flaky: FlakyStore
) -> None:
    flaky.failures[("put_step", "succeeded")] = 3  # the contact's outcome, three times
    final = execute(harness)
    assert final.status is RunStatus.SUCCEEDED
    assert flaky.failed == 3
    stored = flaky.get_run(final.id)
    assert [s.status for s in stored.steps] == [StepStatus.SUCCEEDED] * 3
    assert len(harness.quo.contacts) == 1
    assert len(harness.quo.sent_messages) == 1


def test_a_claim_that_fails_sends_nothing_and_the_run_waits(
    harness: Harness, flaky: FlakyStore
) -> None:
    flaky.failures[("claim", None)] = 1
    with pytest.raises(StoreError):
        execute(harness)
    assert harness.quo.count == 0
    assert flaky.find_run(harness.recipe.name, "k1").status is RunStatus.PENDING  # type: ignore[union-attr]
    assert execute(harness).status is RunStatus.SUCCEEDED  # tried again (the dispatcher's part)
    assert len(harness.quo.sent_messages) == 1


def test_a_sending_mark_that_fails_stops_the_request_before_it_leaves(
    harness: Harness, flaky: FlakyStore
) -> None:
    flaky.failures[("put_step", "sending")] = 1  # the contact's "sending" mark
    with pytest.raises(StoreError):
        execute(harness)
    assert harness.quo.count == 0
    final = execute(harness)
    assert final.status is RunStatus.SUCCEEDED
    assert len(harness.quo.contacts) == 1
    assert len(harness.quo.sent_messages) == 1
