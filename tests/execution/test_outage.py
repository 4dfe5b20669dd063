"""A run meeting a provider outage: it waits it out (virtual time), and a crash while it waits
leaves a step that was never sent (sent on resume), not an unknown one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx

from automations.connections import Connections, ConnectionSettings
from automations.execution.executor import Executor, new_run
from automations.records import RunFilter, RunRecord, RunStatus, StepStatus, TriggerKind
from automations.retry import RetryPolicy
from tests.execution.conftest import ROW, Crash, Harness

TEN_MINUTES = 600.0


def run_through_outage(harness: Harness, sleep_hook: Callable[[], None] | None = None) -> RunRecord:
    clock = harness.clock

    async def sleep(seconds: float) -> None:
        if sleep_hook is not None and seconds >= 0.5:
            sleep_hook()
        await clock.sleep(seconds)

    async def go() -> RunRecord:
        async with Connections(
            ConnectionSettings.from_env(harness.env),
            transport=httpx.MockTransport(harness.handler),
            clock=clock,
            sleep=sleep,
        ) as conns:
            executor = Executor(harness.store, conns, harness.env, retry=RetryPolicy())
            found = harness.store.find_run(harness.recipe.name, "k1")
            run = (
                found
                or harness.store.enqueue(
                    new_run(harness.recipe.name, TriggerKind.MANUAL, "k1", ROW)
                )[0]
            )
            return await executor.execute(run, harness.recipe)

    return asyncio.run(go())


def test_a_run_rides_out_a_ten_minute_outage(harness: Harness) -> None:
    harness.quo.outage(harness.clock.now + TEN_MINUTES, httpx.ConnectError)
    seen: list[list[StepStatus]] = []

    def look() -> None:
        [run] = harness.store.list_runs(RunFilter())
        seen.append([s.status for s in run.steps])

    run = run_through_outage(harness, look)
    assert run.status is RunStatus.SUCCEEDED
    assert [s.status for s in run.steps] == [StepStatus.SUCCEEDED] * 3
    assert (len(harness.quo.contacts), len(harness.quo.sent_messages), harness.loops.count) == (
        1,
        1,
        1,
    )
    assert run.steps[0].attempts > 20
    # while it waited for Quo, the contact step was never left marked "sending"
    assert seen and all(statuses == [StepStatus.PENDING] for statuses in seen)


def test_a_crash_while_waiting_for_an_outage_to_end_leaves_nothing_unknown(
    harness: Harness,
) -> None:
    harness.quo.outage(harness.clock.now + TEN_MINUTES, httpx.ConnectError)

    def die() -> None:
        raise Crash

    with contextlib.suppress(Crash):
        run_through_outage(harness, die)
    [left] = harness.store.unfinished()
    assert [s.status for s in left.steps] == [StepStatus.PENDING]
    harness.clock.now += TEN_MINUTES  # the outage is over by the restart
    resumed = run_through_outage(harness)
    assert resumed.status is RunStatus.SUCCEEDED
    assert (len(harness.quo.contacts), len(harness.quo.sent_messages)) == (1, 1)
