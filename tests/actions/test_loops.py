from __future__ import annotations

from typing import Any

import pytest

from automations.actions import ACTIONS
from automations.actions.loops import event_idempotency_key, explain_loops_error
from automations.errors import RenderError
from automations.outbound import Connection, OutboundRequest

UPDATE = ACTIONS["loops.update_contact"]
EVENT = ACTIONS["loops.send_event"]


def test_update_contact_is_an_idempotent_put_without_nulls() -> None:
    req = UPDATE.build(
        {"email": "ada@example.com", "firstName": None, "plan": "pro"},
        run_id="r",
        step_index=2,
        phone_region="US",
    )
    assert req == OutboundRequest(
        Connection.LOOPS,
        "PUT",
        "/v1/contacts/update",
        json={"email": "ada@example.com", "plan": "pro"},
    )


def test_send_event_carries_a_stable_idempotency_key_and_accepts_409() -> None:
    body = {"email": "ada@example.com", "eventName": "signup", "eventProperties": {"a": None}}
    first = EVENT.build(body, run_id="01HXRUN", step_index=1, phone_region="US")
    again = EVENT.build(body, run_id="01HXRUN", step_index=1, phone_region="US")
    other = EVENT.build(body, run_id="01HXRUN", step_index=2, phone_region="US")
    assert first == again
    assert first.idempotency_key == "automations-01HXRUN-1"
    assert other.idempotency_key == "automations-01HXRUN-2"
    assert first.resend_safe is True
    assert first.also_success == frozenset({409})
    assert first.json == {"email": "ada@example.com", "eventName": "signup", "eventProperties": {}}


def test_long_run_ids_hash_into_100_characters() -> None:
    key = event_idempotency_key("r" * 200, 3)
    assert len(key) <= 100
    assert key == event_idempotency_key("r" * 200, 3)
    assert key != event_idempotency_key("r" * 200, 4)
    assert key.startswith("automations-")


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            {"email": "a@example.com", "note": "x" * 501},
            "note",
            "note: is 501 characters long; Loops accepts at most 500",
        ),
        (
            {"email": "a@example.com", "eventName": "e", "eventProperties": {"t": "y" * 600}},
            "eventProperties.t",
            "eventProperties.t: is 600 characters long; Loops accepts at most 500",
        ),
    ],
)
def test_values_over_500_characters_are_refused(
    body: dict[str, Any], path: str, message: str
) -> None:
    spec = EVENT if "eventName" in body else UPDATE
    with pytest.raises(RenderError) as info:
        spec.build(body, run_id="r", step_index=0, phone_region="US")
    assert (info.value.path, str(info.value)) == (path, message)


def test_exactly_500_characters_pass() -> None:
    req = UPDATE.build(
        {"email": "a@example.com", "note": "x" * 500}, run_id="r", step_index=0, phone_region="US"
    )
    assert len(req.json["note"]) == 500


def test_schema_problems_are_render_errors() -> None:
    with pytest.raises(RenderError) as info:
        EVENT.build({"eventName": "signup"}, run_id="r", step_index=0, phone_region="US")
    assert str(info.value) == "needs 'email' or 'userId' (Loops's API schema)"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"success": False, "message": "Invalid email address."},
            ("Invalid email address.", None, "Invalid email address."),
        ),
        (
            401,
            {"success": False, "message": "Invalid API key."},
            ("Invalid API key.", None, "Loops rejected the API key: check LOOPS_API_KEY"),
        ),
        (
            500,
            "oops",
            ("oops", None, "Loops had a server error: try again later (automations replay)"),
        ),
    ],
)
def test_explain_loops_error(status: int, body: Any, expected: tuple[Any, ...]) -> None:
    assert explain_loops_error(status, body) == expected


def test_length_is_counted_as_loops_counts_it() -> None:
    # 250 emoji outside the BMP are 250 code points but 500 UTF-16 units (JavaScript's length):
    # exactly at the cap. One more ASCII character crosses it.
    at_cap = "\U0001f600" * 250
    req = UPDATE.build(
        {"email": "a@example.com", "mood": at_cap}, run_id="r", step_index=0, phone_region="US"
    )
    assert req.json["mood"] == at_cap
    with pytest.raises(RenderError) as info:
        UPDATE.build(
            {"email": "a@example.com", "mood": at_cap + "!"},
            run_id="r",
            step_index=0,
            phone_region="US",
        )
    assert str(info.value) == (
        "mood: is 501 characters long as Loops counts them (UTF-16 units); "
        "Loops accepts at most 500"
    )
    # 300 accented letters are 300 UTF-16 units: fine, though 600 bytes of UTF-8
    UPDATE.build(
        {"email": "a@example.com", "n": "é" * 300}, run_id="r", step_index=0, phone_region="US"
    )


@pytest.mark.parametrize(
    ("value", "what"), [({"plan": "pro"}, "an object"), (["a", "b"], "a list")]
)
def test_event_properties_are_text_numbers_or_booleans(value: Any, what: str) -> None:
    body = {"email": "a@example.com", "eventName": "e", "eventProperties": {"x": value, "n": 1}}
    with pytest.raises(RenderError) as info:
        EVENT.build(body, run_id="r", step_index=0, phone_region="US")
    assert (info.value.path, str(info.value)) == (
        "eventProperties.x",
        f"eventProperties.x: is {what}; Loops event properties are text, numbers or true/false",
    )
