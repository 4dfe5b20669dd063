"""Real HTTP over 127.0.0.1 and a real clock: pacing meets the providers' windows."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from automations.actions import ACTIONS
from automations.connections import Connections, ConnectionSettings
from automations.errors import AmbiguousSendError
from automations.outbound import OutboundRequest, SendResult
from automations.retry import RetryPolicy
from tests.fakes import TIMEOUT_AFTER_RECEIPT, serve_on_loopback
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

pytestmark = pytest.mark.integration

BURST = 40


def sms(i: int) -> OutboundRequest:
    body = {"to": [f"+1555555{i:04d}"], "from": "PN1", "content": f"Message {i}"}
    return ACTIONS["quo.send_sms"].build(body, run_id="r", step_index=i, phone_region="US")


@pytest.mark.parametrize("window", ["fixed", "sliding"])
def test_a_burst_drains_at_the_limit_without_a_single_429(window: str) -> None:
    """40 requests at once: every window gets exactly the limit (10) and none a request more.

    The pacing guard covers the jitter between a request's release and the fake's clock reading
    its arrival (``ratelimit``). Here that jitter is this machine's scheduling, not a network's:
    under a load of 8 on 2 cores the fake's thread read an arrival up to ~35 ms late, more than
    the default 10 ms guard, and one window saw 11. A 100 ms guard covers that; the windows still
    fill to the limit (``max_in_window`` is 10), so the test still proves pacing at the limit."""
    fake = QuoFake(window=window)  # type: ignore[arg-type]

    async def main() -> list[SendResult]:
        async with serve_on_loopback(fake) as base_url:
            env = {
                "QUO_API_KEY": "quo-test-key",
                "QUO_BASE_URL": base_url,
                "AUTOMATIONS_RATE_GUARD_MS": "100",
            }
            async with Connections(ConnectionSettings.from_env(env)) as connections:
                policy = RetryPolicy(max_attempts=1)
                return await asyncio.gather(
                    *(connections.send(sms(i), policy) for i in range(BURST))
                )

    results = asyncio.run(main())
    assert [r.status for r in results] == [202] * BURST
    assert (fake.rejected, fake.count, len(fake.sent_messages)) == (0, BURST, BURST)
    assert fake.max_in_window() == 10


def test_a_lost_sms_answer_over_real_http_is_ambiguous() -> None:
    fake = QuoFake(hang_seconds=2.0)
    fake.script(TIMEOUT_AFTER_RECEIPT)

    async def main() -> None:
        async with serve_on_loopback(fake) as base_url:
            env = {"QUO_API_KEY": "quo-test-key", "QUO_BASE_URL": base_url}
            timeout = httpx.Timeout(0.3)
            async with Connections(ConnectionSettings.from_env(env), timeout=timeout) as c:
                await c.send(sms(1), RetryPolicy())

    with pytest.raises(AmbiguousSendError) as info:
        asyncio.run(main())
    assert "ReadTimeout" in str(info.value)
    assert (fake.count, len(fake.sent_messages)) == (1, 1)


def test_loops_over_real_http_with_the_api_prefix() -> None:
    fake = LoopsFake()
    body = {"email": "ada@example.com", "eventName": "signup"}
    req = ACTIONS["loops.send_event"].build(body, run_id="r", step_index=0, phone_region="US")

    async def main() -> tuple[SendResult, SendResult]:
        async with serve_on_loopback(fake) as base_url:
            env = {"LOOPS_API_KEY": "loops-test-key", "LOOPS_BASE_URL": base_url + "/api"}
            async with Connections(ConnectionSettings.from_env(env)) as c:
                return await c.send(req, RetryPolicy()), await c.send(req, RetryPolicy())

    first, again = asyncio.run(main())
    assert (first.status, again.status) == (200, 409)
    assert len(fake.events) == 1
