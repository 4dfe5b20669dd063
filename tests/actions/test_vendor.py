from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from automations import vendor
from automations.errors import RenderError
from tests.fakes import SpecValidator

REPO = Path(__file__).resolve().parents[2]

VALID = {
    "quo.send_sms": {"content": "Hi", "from": "+15555550199", "to": ["+15555550100"]},
    "quo.create_contact": {
        "defaultFields": {
            "firstName": "Ada",
            "lastName": None,
            "phoneNumbers": [{"name": "mobile", "value": "+15555550100"}],
        },
        "externalId": "row-1",
    },
    "loops.update_contact": {"email": "ada@example.com", "firstName": "Ada", "plan": "pro"},
    "loops.send_event": {
        "email": "ada@example.com",
        "eventName": "signup",
        "eventProperties": {"plan": "pro", "seats": 3},
    },
}
SPEC_OF = {
    "quo.send_sms": ("quo-openapi.json", "post", "/v1/messages"),
    "quo.create_contact": ("quo-openapi.json", "post", "/v1/contacts"),
    "loops.update_contact": ("loops-openapi.json", "put", "/v1/contacts/update"),
    "loops.send_event": ("loops-openapi.json", "post", "/v1/events/send"),
}


def test_packaged_schemas_are_up_to_date_with_the_vendor_specs() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "extract_vendor_schemas.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_data_file_names_its_sources() -> None:
    assert vendor.sources()["quo-openapi.json"]["commit"] == (
        "f72867b0c38ef3316a135734becab6a9cfdfd05a"
    )
    assert vendor.sources()["loops-openapi.json"]["repository"] == "api-evangelist/loops"
    assert set(VALID) <= set(vendor.schema_kinds())


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_bodies_pass_ours_and_the_full_spec(kind: str) -> None:
    assert vendor.validate_body(kind, VALID[kind]) == []
    filename, method, path = SPEC_OF[kind]
    assert SpecValidator(filename).request_errors(method, path, VALID[kind]) == []
    assert "$ref" not in str(vendor.schema_for(kind))


@pytest.mark.parametrize(
    ("kind", "body", "problems"),
    [
        (
            "quo.send_sms",
            {"content": "", "from": "x", "to": ["555"]},
            [
                "content: is empty",
                'content: "" does not match the pattern .*\\S.*',
                'from: "x" does not match ^PN(.*)$ or ^\\+[1-9]\\d{1,14}$',
                'to[0]: "555" does not match the pattern ^\\+[1-9]\\d{1,14}$',
            ],
        ),
        (
            "quo.send_sms",
            {"content": "Hi", "from": "PN1", "to": ["+15555550100", "+15555550101"]},
            ["to: has 2 items; at most 1 allowed"],
        ),
        (
            "quo.send_sms",
            {"from": "PN1", "to": []},
            [
                "(body): missing required field 'content'",
                "to: needs at least 1 item",
            ],
        ),
        (
            "quo.create_contact",
            {"defaultFields": {"lastName": 3}},
            [
                "defaultFields: missing required field 'firstName'",
                "defaultFields.lastName: 3 is not a string or null",
            ],
        ),
        ("loops.update_contact", {"firstName": "Ada"}, ["(body): needs 'email' or 'userId'"]),
        (
            "loops.update_contact",
            {"email": "a@example.com", "tags": ["a"]},
            ['tags: ["a"] is not a string or a number or a boolean'],
        ),
        (
            "loops.send_event",
            {"email": "a@example.com"},
            [
                "(body): missing required field 'eventName'",
            ],
        ),
        ("quo.send_sms", [], ["(body): [] is not an object"]),
    ],
)
def test_invalid_bodies_say_which_field_and_why(
    kind: str, body: object, problems: list[str]
) -> None:
    assert vendor.validate_body(kind, body) == problems


def test_a_format_only_jsonschema_skips_is_still_reported() -> None:
    body = {"defaultFields": {"firstName": "Ada"}, "sourceUrl": "not a uri"}
    assert vendor.validate_body("quo.create_contact", body) == ["sourceUrl: must be uri"]


def test_require_valid_raises_render_error_with_the_path() -> None:
    with pytest.raises(RenderError) as info:
        vendor.require_valid("quo.send_sms", {"content": "Hi", "from": "PN1", "to": ["555"]})
    assert info.value.path == "to[0]"
    assert str(info.value) == (
        'to[0]: "555" does not match the pattern ^\\+[1-9]\\d{1,14}$ (Quo\'s API schema)'
    )


def test_mailing_lists_in_a_contact_update_follow_the_specs_intent() -> None:
    # Read literally, Loops' spec applies its top-level additionalProperties (string, number,
    # boolean) to every key of ContactUpdateRequest, so the full spec refuses mailingLists, which
    # the same spec documents as an object. The packaged schema keeps the evident intent.
    body = {"email": "a@example.com", "mailingLists": {"list1": True}}
    assert vendor.validate_body("loops.update_contact", body) == []
    literal = SpecValidator("loops-openapi.json").request_errors("put", "/v1/contacts/update", body)
    assert literal == ["mailingLists: {'list1': True} is not valid under any of the given schemas"]


def test_unknown_kind_has_no_schema() -> None:
    with pytest.raises(KeyError):
        vendor.schema_for("http.request")


def test_placeholders_for_unset_variables_are_not_problems() -> None:
    body = {"content": "Hi", "from": "${QUO_FROM}", "to": ["${PHONE}"]}
    assert vendor.validate_body("quo.send_sms", body) == []
    assert vendor.validate_body("quo.send_sms", {**body, "to": ["${PHONE}", "x"]}) == [
        "to: has 2 items; at most 1 allowed",
        'to[1]: "x" does not match the pattern ^\\+[1-9]\\d{1,14}$',
    ]
    assert vendor.is_placeholder("${A_1}") and not vendor.is_placeholder("Hi ${A}")
