"""Pacing from the vendors' own signals (issue 14): Retry-After, Quo's ``ratelimit`` ``t=``,
Loops' ``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset`` hold the whole connection."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import httpx
import pytest

from automations.actions import ACTIONS
from automations.connections import Connections, ConnectionSettings
from automations.connections.signals import MAX_HOLD_S, hold_for
from automations.errors import ProviderError
from automations.outbound import OutboundRequest
from automations.retry import RetryPolicy
from tests.fakes import FakeProvider, VirtualClock
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
ONE_TRY = RetryPolicy(max_attempts=1)


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers={k.replace("_", "-"): v for k, v in headers.items()})


@pytest.mark.parametrize(
    ("response", "hold"),
    [
        (answer(200), None),
        (answer(429, retry_after="3"), 3.0),
        (answer(503, retry_after="Mon, 30 Nov 2026 12:00:05 GMT"), 5.0),
        (answer(200, ratelimit='"default";r=0;t=0.4'), 0.4),
        (answer(200, ratelimit='"default";r=3;t=0.4'), None),
        (answer(429, ratelimit='"default";r=2;t=1'), 1.0),
        (answer(200, x_ratelimit_remaining="0", x_ratelimit_reset="2"), 2.0),
        (answer(200, x_ratelimit_remaining="4", x_ratelimit_reset="2"), None),
        (answer(200, x_ratelimit_remaining="0", x_ratelimit_reset=str(NOW.timestamp() + 7)), 7.0),
        (answer(200, x_ratelimit_remaining="0"), None),
        (answer(429, retry_after="86400"), MAX_HOLD_S),
        (answer(429, ratelimit="garbage", x_ratelimit_reset="soon"), None),
    ],
)
def test_hold_for(response: httpx.Response, hold: float | None) -> None:
    assert hold_for(response, now=NOW, unix_now=NOW.timestamp()) == hold


def _connections(fake: FakeProvider, clock: VirtualClock, env: dict[str, str]) -> Connections:
    return Connections(
        ConnectionSettings.from_env(env),
        transport=httpx.MockTransport(fake.handler),
        clock=clock,
        sleep=clock.sleep,
        now=lambda: datetime.fromtimestamp(clock.now, UTC),
    )


def _burst(fake: FakeProvider, env: dict[str, str], reqs: list[OutboundRequest]) -> int:
    """Send ``reqs`` one after another, 100/s on our side; returns how many failed."""
    assert isinstance(fake.clock, VirtualClock)
    clock = fake.clock

    async def main() -> int:
        failed = 0
        async with _connections(fake, clock, env) as conns:
            for req in reqs:
                try:
                    await conns.send(req, ONE_TRY)
                except ProviderError:
                    failed += 1
        return failed

    return asyncio.run(main())


def _sms(i: int) -> OutboundRequest:
    body = {"to": [f"+1555555{i:04d}"], "from": "PN1", "content": f"Message {i}"}
    return ACTIONS["quo.send_sms"].build(body, run_id="r", step_index=i, phone_region="US")


def test_quo_ratelimit_header_holds_until_the_window_resets() -> None:
    env = {"QUO_API_KEY": "quo-test-key", "QUO_RATE_LIMIT": "100"}
    fake = QuoFake(clock=VirtualClock())
    fake.pacing_headers = True
    assert _burst(fake, env, [_sms(i) for i in range(30)]) == 0
    assert (fake.count, fake.rejected, len(fake.sent_messages)) == (30, 0, 30)
    arrivals = [r.at for r in fake.received]
    # ten per one-second window, the eleventh after the reset
    assert math.floor(arrivals[10]) == math.floor(arrivals[0]) + 1
    assert math.floor(arrivals[20]) == math.floor(arrivals[0]) + 2
    # the same burst without the vendor's signal runs into Quo's limit
    blind = QuoFake(clock=VirtualClock())
    assert _burst(blind, env, [_sms(i) for i in range(30)]) == blind.rejected > 0


def test_loops_remaining_zero_with_reset_holds_the_connection() -> None:
    env = {"LOOPS_API_KEY": "loops-test-key", "LOOPS_RATE_LIMIT": "100"}
    fake = LoopsFake(clock=VirtualClock())
    fake.pacing_headers = True
    update = ACTIONS["loops.update_contact"]
    reqs = [
        update.build({"email": f"p{i}@example.com"}, run_id="r", step_index=i, phone_region="US")
        for i in range(25)
    ]
    assert _burst(fake, env, reqs) == 0
    assert (fake.count, fake.rejected) == (25, 0)


def test_retry_after_holds_every_request_of_the_connection() -> None:
    clock = VirtualClock()
    fake = QuoFake(clock=clock)
    fake.script(httpx.Response(429, json={"message": "slow down"}, headers={"Retry-After": "2"}))
    env = {"QUO_API_KEY": "quo-test-key"}

    async def main() -> None:
        async with _connections(fake, clock, env) as conns:
            with pytest.raises(ProviderError):
                await conns.send(_sms(0), ONE_TRY)  # refused, and the connection is held
            await conns.send(_sms(1), ONE_TRY)  # another request waits out the hold

    asyncio.run(main())
    first, second = fake.received
    assert (first.outcome, second.outcome) == (429, 202)
    assert second.at - first.at >= 2.0
