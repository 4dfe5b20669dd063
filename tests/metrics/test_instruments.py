"""``RunnerMetrics``: the counters a ``Connections`` and an executor feed, read back exactly from
the registry (virtual time: waits for a slot are exact)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from prometheus_client import CollectorRegistry

from automations.actions import ACTIONS
from automations.connections import Connections, ConnectionSettings
from automations.errors import AmbiguousSendError
from automations.metrics import REJECTION_REASONS, RunnerMetrics
from automations.outbound import OutboundRequest
from automations.records import RunStatus
from automations.retry import RetryPolicy
from tests.fakes import VirtualClock
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake
from tests.stores.factories import make_run

ENV = {"QUO_API_KEY": "quo-test-key", "LOOPS_API_KEY": "loops-test-key"}
POLICY = RetryPolicy(jitter=False)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def event(run_id: str) -> OutboundRequest:
    body = {"email": "ada@example.com", "eventName": "signup"}
    return ACTIONS["loops.send_event"].build(body, run_id=run_id, step_index=0, phone_region="US")


def sms() -> OutboundRequest:
    body = {"to": ["(555) 555-0100"], "from": "+15555550199", "content": "Your table is ready"}
    return ACTIONS["quo.send_sms"].build(body, run_id="r", step_index=0, phone_region="US")


def send_all(
    fake: LoopsFake | QuoFake, metrics: RunnerMetrics, reqs: list[OutboundRequest]
) -> list[object]:
    clock = fake.clock
    assert isinstance(clock, VirtualClock)

    async def main() -> list[object]:
        async with Connections(
            ConnectionSettings.from_env(ENV),
            transport=httpx.MockTransport(fake.handler),
            clock=clock,
            sleep=clock.sleep,
            observer=metrics,
        ) as conns:
            out: list[object] = []
            for req in reqs:
                try:
                    out.append(await conns.send(req, POLICY))
                except Exception as exc:
                    out.append(exc)
            return out

    return asyncio.run(main())


def test_answers_retries_and_429s_are_counted_per_connection_and_status() -> None:
    metrics = RunnerMetrics(process=False)
    fake = LoopsFake(clock=VirtualClock())
    fake.script(429, 503)  # the first event: 429, 503, then 200
    send_all(fake, metrics, [event("a"), event("b")])
    r = metrics.registry
    assert [x.outcome for x in fake.received] == [429, 503, 200, 200]
    assert value(r, "automations_requests_total", connection="loops", status="429") == 1
    assert value(r, "automations_requests_total", connection="loops", status="503") == 1
    assert value(r, "automations_requests_total", connection="loops", status="200") == 2
    assert value(r, "automations_rate_limited_total", connection="loops") == 1
    assert value(r, "automations_retries_total", connection="loops", reason="429") == 1
    assert value(r, "automations_retries_total", connection="loops", reason="503") == 1
    # four attempts, each waited for its slot; nobody is waiting any more
    assert value(r, "automations_limiter_wait_seconds_count", connection="loops") == 4
    assert value(r, "automations_limiter_waiting", connection="loops") == 0


def test_the_wait_for_a_slot_is_measured_on_the_connections_clock() -> None:
    metrics = RunnerMetrics(process=False)
    fake = LoopsFake(clock=VirtualClock())
    send_all(fake, metrics, [event(f"r{i}") for i in range(3)])
    r = metrics.registry
    # 10 per second, 10 ms guard: the first goes at once, the next two 0.101 s apart
    total = value(r, "automations_limiter_wait_seconds_sum", connection="loops")
    assert total == pytest.approx(0.202)
    assert value(r, "automations_limiter_wait_seconds_bucket", connection="loops", le="0.0") == 1
    assert value(r, "automations_limiter_wait_seconds_bucket", connection="loops", le="0.25") == 3


def test_an_attempt_without_an_answer_is_counted_by_why() -> None:
    metrics = RunnerMetrics(process=False)
    fake = QuoFake(clock=VirtualClock())
    fake.script(httpx.ConnectError, httpx.ReadTimeout)
    [result] = send_all(fake, metrics, [sms()])
    assert isinstance(result, AmbiguousSendError)  # never resent: it may have been delivered
    r = metrics.registry
    assert value(r, "automations_requests_total", connection="quo", status="not_reached") == 1
    assert value(r, "automations_requests_total", connection="quo", status="no_answer") == 1
    assert value(r, "automations_retries_total", connection="quo", reason="not_reached") == 1
    assert value(r, "automations_retries_total", connection="quo", reason="no_answer") is None


def test_runs_are_counted_by_recipe_and_final_status_and_unknown_steps_apart() -> None:
    metrics = RunnerMetrics(process=False)
    for i, status in enumerate(
        [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.UNKNOWN]
    ):
        run = make_run(f"r{i}", recipe="x", status=status)
        metrics.run_finished(replace(run, started_at=10.0, finished_at=10.5))
    r = metrics.registry
    assert value(r, "automations_runs_total", recipe="x", status="succeeded") == 2
    assert value(r, "automations_runs_total", recipe="x", status="failed") == 1
    assert value(r, "automations_runs_total", recipe="x", status="unknown") == 1
    assert value(r, "automations_unknown_steps_total", recipe="x") == 1
    assert value(r, "automations_run_duration_seconds_count", recipe="x") == 4
    assert value(r, "automations_run_duration_seconds_sum", recipe="x") == 2.0


def test_every_rejection_reason_shows_at_zero_until_it_happens() -> None:
    metrics = RunnerMetrics(process=False)
    metrics.intake_rejected("signature")
    metrics.intake_rejected("signature")
    metrics.intake_rejected("size", 3)  # the intake process relays its counts in batches
    r = metrics.registry
    assert {
        reason: value(r, "automations_intake_rejections_total", reason=reason)
        for reason in REJECTION_REASONS
    } == {reason: {"signature": 2.0, "size": 3.0}.get(reason, 0.0) for reason in REJECTION_REASONS}


def test_each_runner_has_its_own_registry() -> None:
    a, b = RunnerMetrics(process=False), RunnerMetrics(process=False)
    a.intake_rejected("size")
    assert value(a.registry, "automations_intake_rejections_total", reason="size") == 1
    assert value(b.registry, "automations_intake_rejections_total", reason="size") == 0


def test_process_basics_are_there_unless_left_out() -> None:
    with_process = RunnerMetrics()
    names = {m.name for m in with_process.registry.collect()}
    assert {"process_resident_memory_bytes", "python_info", "python_gc_objects_collected"} <= names
    assert "python_info" not in {m.name for m in RunnerMetrics(process=False).registry.collect()}
