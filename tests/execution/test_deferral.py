"""A run whose key is refused waits ``pending`` (in the runner): a 401 or a Quo 402 proves the
provider did nothing, so the run is sent again once the connection works, never failed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from automations.execution.executor import Executor, new_run
from automations.records import RunRecord, RunStatus, StepStatus, TriggerKind
from tests.execution.conftest import ROW, Harness


def run_deferring(harness: Harness, run: RunRecord | None = None) -> RunRecord:
    async def go() -> RunRecord:
        async with harness.connections() as conns:
            target = (
                run
                or harness.store.enqueue(
                    new_run(harness.recipe.name, TriggerKind.MANUAL, "k1", ROW)
                )[0]
            )
            executor = Executor(harness.store, conns, harness.env, defer_refused=True)
            return await executor.execute(target, harness.recipe)

    return asyncio.run(go())


def test_a_refused_sms_leaves_the_run_pending_and_it_is_sent_once_later(
    harness: Harness,
) -> None:
    harness.script_for("/v1/messages", 402)
    first = run_deferring(harness)
    assert first.status is RunStatus.PENDING
    assert first.error is not None and "nothing was processed" in first.error
    stored = harness.store.get_run(first.id)
    assert stored.status is RunStatus.PENDING and stored.finished_at is None
    contact, sms = stored.steps
    assert (contact.status, sms.status, sms.http_status) == (
        StepStatus.SUCCEEDED,
        StepStatus.PENDING,
        402,
    )
    assert harness.quo.sent_messages == []
    # credits bought: the run goes on from the SMS; the contact is not created again
    harness.before = None
    final = run_deferring(harness, replace(stored, steps=()))
    assert final.status is RunStatus.SUCCEEDED
    assert len(harness.quo.sent_messages) == 1
    paths = [r.path for r in harness.quo.received]  # the refused SMS, then the one sent
    assert paths == ["/v1/contacts", "/v1/messages", "/v1/messages"]


def test_without_deferral_a_refused_key_fails_the_run(harness: Harness) -> None:
    harness.script_for("/v1/messages", 401)
    assert harness.run().status is RunStatus.FAILED
