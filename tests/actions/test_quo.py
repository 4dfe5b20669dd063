from __future__ import annotations

from typing import Any

import pytest

from automations.actions import ACTIONS
from automations.actions.quo import explain_quo_error
from automations.errors import RenderError
from automations.outbound import Connection, OutboundRequest

SMS = ACTIONS["quo.send_sms"]
CONTACT = ACTIONS["quo.create_contact"]


def build(spec: Any, body: dict[str, Any], region: str = "US") -> OutboundRequest:
    return spec.build(body, run_id="run1", step_index=0, phone_region=region)


def test_registry_holds_every_kind() -> None:
    assert sorted(ACTIONS) == [
        "http.request",
        "loops.delete_contact",
        "loops.find_contact",
        "loops.send_event",
        "loops.send_transactional",
        "loops.update_contact",
        "quo.create_contact",
        "quo.find_contacts",
        "quo.get_call_summary",
        "quo.get_call_transcript",
        "quo.list_phone_numbers",
        "quo.send_sms",
        "quo.update_contact",
    ]
    assert all(ACTIONS[k].kind == k for k in ACTIONS)


def test_send_sms_normalizes_phone_numbers_and_is_not_resend_safe() -> None:
    req = build(SMS, {"to": ["(555) 555-0100"], "from": "555-555-0199", "content": "Hi"})
    assert req == OutboundRequest(
        Connection.QUO,
        "POST",
        "/v1/messages",
        json={"to": ["+15555550100"], "from": "+15555550199", "content": "Hi"},
        resend_safe=False,
    )


def test_send_sms_accepts_a_single_to_and_a_phone_number_id_as_from() -> None:
    req = build(SMS, {"to": 15555550100, "from": "PNabc123", "content": "Hi"})
    assert req.json == {"to": ["+15555550100"], "from": "PNabc123", "content": "Hi"}


def test_send_sms_leaves_the_input_untouched() -> None:
    body = {"to": ["(555) 555-0100"], "from": "PN1", "content": "Hi"}
    build(SMS, body)
    assert body == {"to": ["(555) 555-0100"], "from": "PN1", "content": "Hi"}


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            {"to": ["555"], "from": "PN1", "content": "Hi"},
            "to[0]",
            "to[0]: '555' has the wrong number of digits for its country (region US)",
        ),
        (
            {"to": [None], "from": "PN1", "content": "Hi"},
            "to[0]",
            "to[0]: expected a phone number, got nothing (the value is empty)",
        ),
        (
            {"to": ["+15555550100"], "from": "desk", "content": "Hi"},
            "from",
            "from: 'desk' is not a phone number (region US)",
        ),
        (
            {"to": ["+15555550100"], "from": "PN1", "content": "  "},
            "content",
            'content: "  " does not match the pattern .*\\S.* (Quo\'s API schema)',
        ),
        (
            {"to": ["+15555550100"], "from": "PN1"},
            "",
            "missing required field 'content' (Quo's API schema)",
        ),
    ],
)
def test_send_sms_refuses_before_sending(body: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(RenderError) as info:
        build(SMS, body)
    assert (info.value.path, str(info.value)) == (path, message)


def test_create_contact_normalizes_default_phone_numbers() -> None:
    body = {
        "defaultFields": {
            "firstName": "Ada",
            "phoneNumbers": [
                {"name": "mobile", "value": "(555) 555-0100"},
                {"name": "work", "value": None},
            ],
        }
    }
    req = build(CONTACT, body)
    assert req.method == "POST"
    assert req.path == "/v1/contacts"
    assert req.resend_safe is False  # no idempotency key: never resent blindly
    assert req.json["defaultFields"]["phoneNumbers"] == [
        {"name": "mobile", "value": "+15555550100"},
        {"name": "work", "value": None},
    ]
    assert body["defaultFields"]["phoneNumbers"][0]["value"] == "(555) 555-0100"


def test_create_contact_names_the_bad_phone_field() -> None:
    body = {"defaultFields": {"firstName": "Ada", "phoneNumbers": [{"name": "m", "value": "12"}]}}
    with pytest.raises(RenderError) as info:
        build(CONTACT, body)
    assert info.value.path == "defaultFields.phoneNumbers[0].value"


A2P = {
    "message": "A2P Registration Not Approved",
    "code": "0206400",
    "status": 400,
    "docs": "https://openphone.com/docs",
    "title": "A2P Registration Not Approved",
    "description": "A2P Registration Not Approved",
}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            A2P,
            (
                "A2P Registration Not Approved",
                "0206400",
                "the sending number's US carrier registration (A2P 10DLC) is not approved: texts "
                "from it to US numbers fail until Quo approves the registration",
            ),
        ),
        (
            402,
            {"message": "Not Enough Credits", "code": "0200402", "status": 402},
            (
                "Not Enough Credits",
                "0200402",
                "the Quo workspace has not enough prepaid API credits: add credits, then replay",
            ),
        ),
        (
            403,
            {"message": "Not Phone Number User", "code": "0202403"},
            (
                "Not Phone Number User",
                "0202403",
                "the API key's user is not a user of that phone number: send from a number the "
                "key's user belongs to, or use a key of one of that number's users",
            ),
        ),
        (
            401,
            {"error": {"message": "Invalid API key"}},
            (
                "Invalid API key",
                None,
                "Quo rejected the API key: check QUO_API_KEY (or MATON_API_KEY through Maton)",
            ),
        ),
        (
            400,
            {
                "message": "Invalid body",
                "code": "0100400",
                "errors": [{"path": "/to/0", "message": "must match E.164"}],
            },
            (
                "Invalid body (/to/0: must match E.164)",
                "0100400",
                "Quo refused the request's fields: correct the action's parameters",
            ),
        ),
        (
            502,
            "<html>Bad Gateway</html>",
            (
                "<html>Bad Gateway</html>",
                None,
                "Quo had a server error: try again later (automations replay)",
            ),
        ),
        (418, None, (None, None, None)),
    ],
)
def test_explain_quo_error(status: int, body: Any, expected: tuple[Any, ...]) -> None:
    assert explain_quo_error(status, body) == expected
    assert SMS.explain_error(status, body) == expected


def test_preview_placeholders_are_left_alone() -> None:
    # In previews and dry runs an unset variable renders as "${NAME}".
    req = build(SMS, {"to": ["${TEST_PHONE}"], "from": "${QUO_FROM}", "content": "Hi"})
    assert req.json == {"to": ["${TEST_PHONE}"], "from": "${QUO_FROM}", "content": "Hi"}
    with pytest.raises(RenderError):
        build(SMS, {"to": ["${TEST_PHONE}"], "from": "${QUO_FROM}"})  # content still required


@pytest.mark.parametrize("kind", sorted(ACTIONS))
def test_a_body_that_is_not_a_mapping_is_a_render_error(kind: str) -> None:
    with pytest.raises(RenderError) as info:
        ACTIONS[kind].build("hello", run_id="r", step_index=0, phone_region="US")
    assert str(info.value) == f"{kind} takes a mapping of fields, not str"


def test_create_contact_refuses_a_reserved_source() -> None:
    with pytest.raises(RenderError) as info:
        build(CONTACT, {"defaultFields": {"firstName": "Ada"}, "source": "csv-import"})
    assert info.value.path == "source"
    assert str(info.value).startswith('source: "csv-import" is a source Quo reserves')


@pytest.mark.parametrize(
    ("status", "path", "gateway", "advice"),
    [
        (
            403,
            "/v1/contacts",
            False,
            "Quo refused access to contacts: the API key (or the Maton connection) is not allowed "
            "to use contacts in this workspace; this is not about phone numbers",
        ),
        (
            403,
            "/v1/messages",
            False,
            "the API key's user is not a user of that phone number: send from a number the key's "
            "user belongs to, or use a key of one of that number's users",
        ),
        (
            404,
            "/v1/contacts/abc",
            False,
            "Quo has no contact with that id (deleted in Quo?): look it up again",
        ),
        (
            500,
            "/v1/messages",
            True,
            "the Maton gateway failed: this usually means the Quo OAuth connection in Maton "
            "expired or was revoked; reconnect Quo in Maton (MATON_CONNECTION), then replay",
        ),
        (
            500,
            "/v1/messages",
            False,
            "Quo had a server error: try again later (automations replay)",
        ),
    ],
)
def test_advice_is_the_endpoints_own(status: int, path: str, gateway: bool, advice: str) -> None:
    assert explain_quo_error(status, {"message": "x"}, path=path, gateway=gateway)[2] == advice
