"""A provider outage of up to 10 minutes ends in success for requests safe to retry (issue 9:
the old budget of ~12 s failed every run of a longer outage). Virtual time: no real waiting."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from automations.errors import AmbiguousSendError, ConfigError, ProviderError
from automations.outbound import OutboundRequest, SendResult
from automations.retry import RetryPolicy, parse_budget
from tests.connections.test_send import event, run, sms
from tests.fakes import FakeProvider, VirtualClock
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

START = 1000.0
TEN_MINUTES = 600.0


def send(fake: FakeProvider, req: OutboundRequest, policy: RetryPolicy, **kw: Any) -> SendResult:
    return run(fake, lambda c: c.send(req, policy, **kw), rng=random.Random(8))


def test_the_default_budget_rides_out_ten_minutes() -> None:
    policy = RetryPolicy()
    assert policy.max_total >= TEN_MINUTES + policy.max_delay
    assert policy.max_delay == 30.0


@pytest.mark.parametrize("seed", range(5))
def test_a_loops_event_during_a_ten_minute_outage_is_delivered_once(seed: int) -> None:
    fake = LoopsFake(clock=VirtualClock(START))
    fake.outage(START + TEN_MINUTES, 503)
    clock = fake.clock
    assert isinstance(clock, VirtualClock)
    result = run(fake, lambda c: c.send(event(), RetryPolicy()), rng=random.Random(seed))
    assert result.status == 200
    assert len(fake.events) == 1
    assert [r.outcome for r in fake.received][-1] == 200
    assert {r.outcome for r in fake.received[:-1]} == {503}
    assert result.attempts == len(fake.received)
    backoffs = [s for s in clock.sleeps if s >= 0.5]  # not the rate limiter's short spacing
    assert max(backoffs) <= 30.0  # capped
    assert len(set(backoffs)) > 5  # jittered, not in lockstep
    assert START + TEN_MINUTES <= clock.now <= START + TEN_MINUTES + 31


def test_an_sms_during_an_outage_that_refuses_connections_is_sent_once() -> None:
    """No connection proves nothing arrived: even an SMS is tried again, for the whole budget."""
    fake = QuoFake(clock=VirtualClock(START))
    fake.outage(START + TEN_MINUTES, httpx.ConnectError)
    result = send(fake, sms(), RetryPolicy())
    assert result.status == 202
    assert (fake.count, len(fake.sent_messages)) == (1, 1)  # the outage's tries never arrived
    assert result.attempts > 20


def test_an_sms_meeting_a_503_outage_is_unknown_not_retried() -> None:
    """A 503 may come after Quo acted: the SMS is not sent again, whatever the budget."""
    fake = QuoFake(clock=VirtualClock(START))
    fake.outage(START + TEN_MINUTES, 503)
    with pytest.raises(AmbiguousSendError):
        send(fake, sms(), RetryPolicy())
    assert fake.count == 1


def test_an_outage_longer_than_the_budget_fails_saying_so() -> None:
    fake = LoopsFake(clock=VirtualClock(START))
    fake.outage(START + 3600, httpx.ConnectError)
    with pytest.raises(ProviderError) as info:
        send(fake, event(), RetryPolicy(max_total=120))
    assert info.value.retryable is True
    assert "could not be reached (ConnectError)" in str(info.value)
    assert "the next try would pass the 120 s limit" in str(info.value)
    assert fake.count == 0


def test_retry_after_is_honoured_during_an_outage() -> None:
    fake = QuoFake(clock=VirtualClock(START))
    fake.script(*[httpx.Response(429, headers={"Retry-After": "120"})] * 4)
    result = send(fake, sms(), RetryPolicy())
    assert result.attempts == 5
    assert [s for s in fake.clock.sleeps if s >= 1] == [120.0] * 4  # type: ignore[attr-defined]
    assert len(fake.sent_messages) == 1


def test_a_request_that_never_arrived_is_not_left_marked_sending_while_it_waits() -> None:
    """The executor's marks: "sending" before each try, cleared after a try that provably never
    arrived, so a crash during a long wait leaves a step that was never sent."""
    fake = QuoFake(clock=VirtualClock(START))
    fake.script(httpx.ConnectError, httpx.Response(429))
    marks: list[str] = []
    result = send(
        fake,
        sms(),
        RetryPolicy(),
        on_sending=lambda: marks.append("sending"),
        on_unsent=lambda: marks.append("unsent"),
    )
    assert result.attempts == 3
    assert marks == ["sending", "unsent", "sending", "unsent", "sending"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("900", 900.0), ("90s", 90.0), ("15m", 900.0), ("1h", 3600.0), ("0", 0.0)]
)
def test_the_budget_is_configurable(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds
    assert RetryPolicy.from_env({"AUTOMATIONS_RETRY_BUDGET": text}).max_total == seconds
    assert RetryPolicy.from_env({}) == RetryPolicy()


@pytest.mark.parametrize("text", ["soon", "-5", "5x", "inf", "nan", "m"])
def test_a_budget_that_is_not_a_duration_names_the_variable(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        RetryPolicy.from_env({"AUTOMATIONS_RETRY_BUDGET": text})
    assert info.value.variable == "AUTOMATIONS_RETRY_BUDGET"
    assert str(info.value) == (
        f"AUTOMATIONS_RETRY_BUDGET={text!r} is not a duration: write seconds (900) or 90s, 15m, 1h"
    )
