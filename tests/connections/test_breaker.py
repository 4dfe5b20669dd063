"""The circuit breaker: a refused key pauses its connection; one probe a minute; resume."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from automations.actions import ACTIONS
from automations.breaker import Breaker, BreakerState, refuses_key
from automations.connections import Connections, ConnectionSettings
from automations.errors import ConnectionPausedError, ProviderError
from automations.outbound import Connection, OutboundRequest
from automations.retry import RetryPolicy
from tests.fakes import VirtualClock
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

POLICY = RetryPolicy(jitter=False)
WRONG = {"QUO_API_KEY": "wrong-key", "LOOPS_API_KEY": "wrong-key"}


def sms(i: int = 0) -> OutboundRequest:
    body = {"to": ["(555) 555-0100"], "from": "+15555550199", "content": f"hello {i}"}
    return ACTIONS["quo.send_sms"].build(body, run_id=f"r{i}", step_index=0, phone_region="US")


def event(i: int = 0) -> OutboundRequest:
    body = {"email": "ada@example.com", "eventName": "signup"}
    return ACTIONS["loops.send_event"].build(body, run_id=f"r{i}", step_index=0, phone_region="US")


def connections(fake: QuoFake | LoopsFake, clock: VirtualClock) -> Connections:
    return Connections(
        ConnectionSettings.from_env(WRONG),
        transport=httpx.MockTransport(fake.handler),
        clock=clock,
        sleep=clock.sleep,
    )


async def outcome(conns: Connections, req: OutboundRequest) -> str:
    try:
        result = await conns.send(req, POLICY)
    except ConnectionPausedError:
        return "paused"
    except ProviderError as exc:
        return str(exc.status)
    return str(result.status)


def test_three_401s_in_a_row_pause_the_connection_and_nothing_more_is_sent() -> None:
    clock = VirtualClock()
    fake = LoopsFake(["loops-test-key"], clock=clock)

    async def main() -> list[str]:
        async with connections(fake, clock) as conns:
            seen = [await outcome(conns, event(i)) for i in range(10)]
            breaker = conns.breaker_for(Connection.LOOPS)
            assert breaker is not None and breaker.state is BreakerState.OPEN
            assert breaker.reason is not None and "LOOPS_API_KEY" in breaker.reason
            assert "wrong-key" not in breaker.reason
            return seen

    assert asyncio.run(main()) == ["401"] * 3 + ["paused"] * 7
    assert fake.count == 3


def test_a_probe_a_minute_then_resume_when_the_key_works() -> None:
    clock = VirtualClock()
    fake = LoopsFake(["loops-test-key"], clock=clock)

    async def main() -> list[str]:
        async with connections(fake, clock) as conns:
            seen = [await outcome(conns, event(i)) for i in range(3)]
            breaker = conns.breaker_for(Connection.LOOPS)
            assert breaker is not None
            await clock.sleep(30)
            seen.append(await outcome(conns, event(3)))  # not due yet
            await clock.sleep(30)
            seen.append(await outcome(conns, event(4)))  # the probe: refused again
            seen.append(await outcome(conns, event(5)))
            await clock.sleep(60)
            fake.keys = frozenset({"wrong-key"})  # the key was fixed at Loops' end
            seen.append(await outcome(conns, event(6)))  # the probe succeeds
            assert breaker.state is BreakerState.CLOSED and breaker.failures == 0
            seen.append(await outcome(conns, event(7)))
            return seen

    assert asyncio.run(main()) == ["401"] * 3 + ["paused", "401", "paused", "200", "200"]
    assert fake.count == 6


def test_a_quo_402_pauses_at_once_and_a_success_resets_the_count() -> None:
    clock = VirtualClock()
    fake = QuoFake(["wrong-key"], clock=clock)

    async def main() -> list[str]:
        async with connections(fake, clock) as conns:
            fake.script(401, 401)
            seen = [await outcome(conns, sms(i)) for i in range(3)]  # 401, 401, then accepted
            fake.script(401, 401, 402)
            seen += [await outcome(conns, sms(i)) for i in range(3, 7)]
            return seen

    assert asyncio.run(main()) == ["401", "401", "202", "401", "401", "402", "paused"]
    assert fake.count == 6


def test_refuses_key_is_about_the_key_only() -> None:
    assert refuses_key(Connection.QUO, 401) and refuses_key(Connection.LOOPS, 401)
    assert refuses_key(Connection.QUO, 402) and not refuses_key(Connection.LOOPS, 402)
    assert not refuses_key(Connection.HTTP, 401)
    assert not any(refuses_key(Connection.QUO, s) for s in (None, 400, 403, 404, 429, 500))


def test_the_breaker_tells_its_listener_each_change_and_logs_the_pause_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = VirtualClock()
    changes: list[BreakerState] = []
    breaker = Breaker(Connection.QUO, clock=clock, on_change=lambda b: changes.append(b.state))
    for _ in range(5):
        breaker.refused(401, "answered 401 (authentication failed)", probe=False)
    with pytest.raises(ConnectionPausedError) as info:
        breaker.admit()
    assert info.value.retry_in == 60.0
    clock.now += 60
    assert breaker.admit() is True
    breaker.succeeded(probe=True)
    assert changes == [BreakerState.OPEN, BreakerState.CLOSED]
    paused = [r for r in caplog.records if "paused" in r.getMessage()]
    assert len(paused) == 1
