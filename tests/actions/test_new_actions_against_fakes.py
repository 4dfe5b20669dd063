"""Each new action (issue 14) against the stateful fakes: the request is checked against the
vendor's full spec (body, path and query parameters), the answer against the spec's response
schema, and the fakes keep what was written."""

from __future__ import annotations

from typing import Any

import pytest

from automations.actions import ACTIONS
from automations.errors import RenderError
from automations.outbound import OutboundRequest
from tests.actions.test_against_fakes import send
from tests.fakes import FakeProvider, VirtualClock
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

CALL = "AC3700e624eca547eb9f749a06f"


def build(kind: str, body: dict[str, Any]) -> OutboundRequest:
    return ACTIONS[kind].build(body, run_id="run1", step_index=2, phone_region="US")


def check(fake: FakeProvider, req: OutboundRequest, status: int) -> Any:
    result = send(fake, req)
    assert result.status == status
    rec = fake.received[-1]
    path = rec.path.removeprefix("/api")
    matched = fake.validator.match(req.method, path)
    assert matched is not None
    template, _ = matched
    assert fake.validator.response_errors(req.method, template, status, result.body) == []
    return result.body


def test_quo_contacts_find_update_and_the_fake_keeps_them() -> None:
    quo = QuoFake(clock=VirtualClock())
    created = check(
        quo,
        build(
            "quo.create_contact",
            {"defaultFields": {"firstName": "Ada"}, "externalId": "ada+1@example.com"},
        ),
        201,
    )
    found = check(
        quo,
        build("quo.find_contacts", {"externalIds": ["ada+1@example.com"], "maxResults": 5}),
        200,
    )
    assert [c["id"] for c in found["data"]] == [created["data"]["id"]]
    assert quo.received[-1].path == "/v1/contacts"
    updated = check(
        quo,
        build(
            "quo.update_contact",
            {
                "id": created["data"]["id"],
                "defaultFields": {
                    "lastName": "Lovelace",
                    "phoneNumbers": [{"name": "m", "value": "(555) 555-0100"}],
                },
            },
        ),
        200,
    )
    assert updated["data"]["defaultFields"]["lastName"] == "Lovelace"
    assert quo.contacts[0]["defaultFields"]["phoneNumbers"][0]["value"] == "+15555550100"
    none = check(quo, build("quo.find_contacts", {"externalIds": ["nobody"], "maxResults": 1}), 200)
    assert none == {"data": [], "totalItems": 0, "nextPageToken": None}
    assert quo.count == 4


def test_quo_call_summary_transcript_and_phone_numbers() -> None:
    quo = QuoFake(clock=VirtualClock())
    quo.call_summaries[CALL] = {"summary": ["Wants a demo on Tuesday."], "nextSteps": ["Book it"]}
    quo.call_transcripts[CALL] = [
        {"content": "Hello", "start": 0.0, "end": 1.5, "identifier": "+15555550100", "userId": None}
    ]
    pid = quo.add_phone_number("+15555550199")
    summary = check(quo, build("quo.get_call_summary", {"callId": CALL}), 200)
    assert summary["data"]["summary"] == ["Wants a demo on Tuesday."]
    assert quo.received[-1].path == f"/v1/call-summaries/{CALL}"
    transcript = check(quo, build("quo.get_call_transcript", {"id": CALL}), 200)
    assert transcript["data"]["dialogue"][0]["content"] == "Hello"
    numbers = check(quo, build("quo.list_phone_numbers", {}), 200)
    assert [(n["id"], n["restrictions"]["messaging"]["US"]) for n in numbers["data"]] == [
        (pid, "unrestricted")
    ]


def test_loops_find_transactional_delete() -> None:
    loops = LoopsFake(clock=VirtualClock())
    check(loops, build("loops.update_contact", {"email": "a+b@example.com", "userId": "u1"}), 200)
    found = check(loops, build("loops.find_contact", {"email": "a+b@example.com"}), 200)
    assert [c["email"] for c in found] == ["a+b@example.com"]
    body = {
        "transactionalId": "cll42l54f20i1la0lfooe3z12",
        "email": "a+b@example.com",
        "dataVariables": {"name": "Ada"},
        "idempotency_key": "a+b@example.com-welcome",
    }
    check(loops, build("loops.send_transactional", body), 200)
    assert loops.received[-1].headers["idempotency-key"] == "a+b@example.com-welcome"
    # the same key again (a new run of a re-exported row): Loops answers 409, counted as sent
    again = send(loops, build("loops.send_transactional", body))
    assert again.status == 409
    assert len(loops.transactional) == 1
    check(loops, build("loops.delete_contact", {"email": "a+b@example.com", "userId": "u1"}), 200)
    assert check(loops, build("loops.find_contact", {"email": "a+b@example.com"}), 200) == []
    assert loops.count == 6


def test_send_event_takes_a_written_idempotency_key() -> None:
    loops = LoopsFake(clock=VirtualClock())
    body = {"email": "a@example.com", "eventName": "trialStarted", "idempotency_key": "a-trial"}
    assert send(loops, build("loops.send_event", body)).status == 200
    assert send(loops, build("loops.send_event", {**body})).status == 409
    assert (len(loops.events), loops.received[0].headers["idempotency-key"]) == (1, "a-trial")
    long = build("loops.send_event", {**body, "idempotency_key": "x" * 150})
    assert long.idempotency_key is not None and len(long.idempotency_key) <= 100


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("loops.find_contact", {}, "needs email or userId (the contact to look up)"),
        ("quo.get_call_summary", {"callId": "nope"}, 'callId: "nope" does not match'),
        ("quo.find_contacts", {"externalIds": ["x"]}, "missing required field 'maxResults'"),
    ],
)
def test_bad_parameters_stop_before_sending(kind: str, body: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError) as info:
        build(kind, body)
    assert message in str(info.value)


def test_the_fake_refuses_query_parameters_the_spec_refuses() -> None:
    from automations.errors import ProviderError
    from automations.outbound import Connection

    quo = QuoFake(clock=VirtualClock())
    req = OutboundRequest(Connection.QUO, "GET", "/v1/contacts?externalIds=a&maxResults=500")
    with pytest.raises(ProviderError) as info:
        send(quo, req)
    assert info.value.status == 400
    assert (info.value.vendor_message or "").startswith(
        "query maxResults: 500 is greater than the maximum of 50"
    )
    unknown = OutboundRequest(Connection.QUO, "GET", "/v1/contacts?externalIds=a&maxResults=1&x=1")
    with pytest.raises(ProviderError) as info:
        send(quo, unknown)
    assert (info.value.vendor_message or "").startswith(
        "query x: not a parameter of GET /v1/contacts"
    )
