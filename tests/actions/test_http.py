from __future__ import annotations

from typing import Any

import pytest

from automations.actions import ACTIONS
from automations.errors import RenderError
from automations.outbound import Connection, OutboundRequest

HTTP = ACTIONS["http.request"]


def build(body: dict[str, Any]) -> OutboundRequest:
    return HTTP.build(body, run_id="r", step_index=0, phone_region="US")


def test_builds_a_request_to_the_absolute_url() -> None:
    req = build(
        {
            "method": "post",
            "url": "https://hooks.example.com/in?x=1",
            "headers": {"X-Token": "t", "X-Count": 3, "X-None": None},
            "json": {"a": 1},
        }
    )
    assert req == OutboundRequest(
        Connection.HTTP,
        "POST",
        "https://hooks.example.com/in?x=1",
        json={"a": 1},
        headers=(("X-Token", "t"), ("X-Count", "3")),
        resend_safe=False,
    )


@pytest.mark.parametrize(
    ("method", "safe"),
    [
        ("GET", True),
        ("HEAD", True),
        ("PUT", True),
        ("DELETE", True),
        ("OPTIONS", True),
        ("POST", False),
        ("PATCH", False),
    ],
)
def test_only_idempotent_methods_are_resend_safe(method: str, safe: bool) -> None:
    assert build({"method": method, "url": "http://x.test/"}).resend_safe is safe


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_post_with_its_own_idempotency_key_is_resend_safe(method: str) -> None:
    keyed = {"method": method, "url": "http://x.test/", "headers": {"idempotency-key": "k-1"}}
    assert build(keyed).resend_safe is True
    empty = {"method": method, "url": "http://x.test/", "headers": {"Idempotency-Key": ""}}
    assert build(empty).resend_safe is False


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"url": "/relative"}, "url"),
        ({"url": "ftp://x.test/file"}, "url"),
        ({"url": 3}, "url"),
        ({"method": "FETCH", "url": "https://x.test"}, "method"),
        ({"url": "https://x.test", "body": {}}, "body"),
        ({"url": "https://x.test", "headers": ["a"]}, "headers"),
    ],
)
def test_refuses_malformed_requests(body: dict[str, Any], path: str) -> None:
    with pytest.raises(RenderError) as info:
        build(body)
    assert info.value.path == path


def test_explains_common_error_shapes() -> None:
    assert HTTP.explain_error(422, {"error": {"message": "bad", "code": "E1"}}) == (
        "bad",
        "E1",
        "the endpoint refused the request: check the action's body and headers",
    )
    assert HTTP.explain_error(503, {"detail": "down"})[0] == "down"
