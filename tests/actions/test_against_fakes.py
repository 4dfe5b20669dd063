"""Each action's rendered body, sent through ``Connections``, is accepted by a fake that checks it
against the vendor's full OpenAPI spec; the fakes' answers match the spec's response schemas."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from automations.actions import ACTIONS
from automations.connections import Connections, ConnectionSettings
from automations.errors import ProviderError
from automations.outbound import OutboundRequest, SendResult
from automations.retry import RetryPolicy
from tests.fakes import FakeProvider, VirtualClock
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

ENV = {"QUO_API_KEY": "quo-test-key", "LOOPS_API_KEY": "loops-test-key"}

BODIES: dict[str, dict[str, Any]] = {
    "quo.send_sms": {"to": "(555) 555-0100", "from": "PNabc", "content": "Hi Ada"},
    "quo.create_contact": {
        "defaultFields": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "company": None,
            "emails": [{"name": "work", "value": "ada@example.com"}],
            "phoneNumbers": [{"name": "mobile", "value": "555 555 0100"}],
        },
        "customFields": [{"key": "plan", "value": "pro"}],
        "externalId": "row-7",
    },
    "loops.update_contact": {
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": None,
        "plan": "pro",
        "seats": 3,
        "vip": True,
    },
    "loops.send_event": {
        "email": "ada@example.com",
        "eventName": "signup",
        "eventProperties": {"plan": "pro", "seats": 3},
    },
}
STATUS = {
    "quo.send_sms": 202,
    "quo.create_contact": 201,
    "loops.update_contact": 200,
    "loops.send_event": 200,
}


def send(fake: FakeProvider, req: OutboundRequest) -> SendResult:
    clock = fake.clock
    assert isinstance(clock, VirtualClock)

    async def main() -> SendResult:
        async with Connections(
            ConnectionSettings.from_env(ENV),
            transport=httpx.MockTransport(fake.handler),
            clock=clock,
            sleep=clock.sleep,
        ) as connections:
            return await connections.send(req, RetryPolicy(max_attempts=1))

    return asyncio.run(main())


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_rendered_bodies_are_accepted_by_the_full_spec(kind: str) -> None:
    spec = ACTIONS[kind]
    req = spec.build(BODIES[kind], run_id="r", step_index=0, phone_region="US")
    fake: FakeProvider = (QuoFake if kind.startswith("quo.") else LoopsFake)(clock=VirtualClock())
    result = send(fake, req)
    assert result.status == STATUS[kind]
    [received] = fake.received
    path = received.path.removeprefix("/api")
    assert fake.validator.request_errors(req.method, path, received.body) == []
    assert fake.validator.response_errors(req.method, path, result.status, result.body) == []


def test_the_fake_refuses_what_the_spec_refuses() -> None:
    fake = QuoFake(clock=VirtualClock())
    # Built by hand, bypassing the adapter's checks: two recipients, which Quo does not allow.
    req = OutboundRequest(
        ACTIONS["quo.send_sms"].connection,
        "POST",
        "/v1/messages",
        json={"to": ["+15555550100", "+15555550101"], "from": "PN1", "content": "Hi"},
        resend_safe=False,
    )
    with pytest.raises(ProviderError) as info:
        send(fake, req)
    assert info.value.status == 400
    assert info.value.vendor_message is not None
    assert info.value.vendor_message.startswith("to: ['+15555550100', '+15555550101'] is too long")


def test_a_maton_500_is_explained_as_an_expired_connection() -> None:
    fake = QuoFake(clock=VirtualClock())
    fake.script(500)
    req = ACTIONS["quo.send_sms"].build(
        BODIES["quo.send_sms"], run_id="r", step_index=0, phone_region="US"
    )
    clock = fake.clock
    assert isinstance(clock, VirtualClock)

    async def main() -> None:
        async with Connections(
            ConnectionSettings.from_env({"MATON_API_KEY": "maton-test-key"}),
            transport=httpx.MockTransport(fake.handler),
            clock=clock,
            sleep=clock.sleep,
        ) as connections:
            await connections.send(req, RetryPolicy(max_attempts=1))

    with pytest.raises(ProviderError) as info:
        asyncio.run(main())
    assert fake.count == 1
    assert fake.received[0].path == "/quo/v1/messages"
    assert info.value.advice is not None
    assert info.value.advice.startswith(
        "the Maton gateway failed: this usually means the Quo OAuth"
    )
