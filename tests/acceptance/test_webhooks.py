"""Webhooks into the real runner: every answer of the intake, then the audit shows exactly the
runs that were accepted (and the fakes received exactly their requests)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.acceptance.conftest import (
    LOOPS_HOOK,
    Fakes,
    StartRunner,
    dumps,
    openphone_headers,
    standard_headers,
    write_recipe,
)

pytestmark = pytest.mark.acceptance

QUO_HOOK = """
name: quo-hook
trigger:
  webhook:
    path: /hooks/quo
    verify: {scheme: openphone, secret: "${QUO_HOOK_SECRET}"}
columns:
  Type: type
  From: data.object.from
only_run_if: "Type == 'message.received'"
actions:
  - loops.send_event: {userId: /From, eventName: replied}
"""


def _quo_event(event_id: str, kind: str = "message.received") -> bytes:
    return dumps(
        {"id": event_id, "type": kind, "data": {"object": {"from": "+15555550123", "text": "yes"}}}
    )


def test_webhook_answers_and_the_runs_they_leave(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    write_recipe(recipes_dir, "loops-hook.yaml", LOOPS_HOOK)
    write_recipe(recipes_dir, "quo-hook.yaml", QUO_HOOK)
    runner = start_runner(recipes_dir, "--max-body", "2048")

    # a valid delivery is recorded and answered 202 with its run id
    body = dumps({"email": "ada@example.com"})
    first = runner.post("/hooks/loops", body, standard_headers(body, "msg_1"))
    assert first.status_code == 202
    run_id = first.json()["run_id"]
    assert first.json() == {"run_id": run_id, "status": "accepted"}

    # the provider's retry of the same delivery: 200, the same run, no second run
    again = runner.post("/hooks/loops", body, standard_headers(body, "msg_1"))
    assert (again.status_code, again.json()) == (200, {"run_id": run_id, "status": "duplicate"})

    # forged: signed with another secret
    forged = standard_headers(body, "msg_forged", secret="whsec_" + "b3RoZXItc2VjcmV0LTEyMw==")
    assert runner.post("/hooks/loops", body, forged).status_code == 401
    # a genuine signature over another body
    tampered = standard_headers(body, "msg_tampered")
    assert runner.post("/hooks/loops", dumps({"email": "eve@x.com"}), tampered).status_code == 401
    # stale: correctly signed ten minutes ago (tolerance is five)
    stale = standard_headers(body, "msg_stale", ts=int(time.time()) - 600)
    assert runner.post("/hooks/loops", body, stale).status_code == 401
    # unsigned
    assert (
        runner.post("/hooks/loops", body, {"content-type": "application/json"}).status_code == 401
    )
    # oversized (over --max-body 2048), signed correctly
    big = dumps({"email": "big@example.com", "pad": "x" * 3000})
    assert runner.post("/hooks/loops", big, standard_headers(big, "msg_big")).status_code == 413
    # not JSON, signed correctly
    text = b"email=ada@example.com"
    assert runner.post("/hooks/loops", text, standard_headers(text, "msg_text")).status_code == 400
    # wrong method, unknown path
    got = runner.client.get(runner.url("/hooks/loops"))
    assert (got.status_code, got.headers["allow"]) == (405, "POST")
    assert runner.post("/hooks/nowhere", body, standard_headers(body, "msg_x")).status_code == 404

    # Quo's legacy signature; the event id in the body identifies the delivery
    quo = _quo_event("EV1")
    assert runner.post("/hooks/quo", quo, openphone_headers(quo)).status_code == 202
    assert runner.post("/hooks/quo", quo, openphone_headers(quo)).status_code == 200
    other = _quo_event("EV2", "message.delivered")  # recorded, skipped by only_run_if
    assert runner.post("/hooks/quo", other, openphone_headers(other)).status_code == 202
    forged_quo = openphone_headers(quo, secret="d3Jvbmctc2VjcmV0")
    assert runner.post("/hooks/quo", quo, forged_quo).status_code == 401
    # a second valid Standard Webhooks delivery
    body2 = dumps({"email": "grace@example.com"})
    assert runner.post("/hooks/loops", body2, standard_headers(body2, "msg_2")).status_code == 202

    runner.wait_runs(None, 4)
    runner.wait_idle()
    runs = runner.runs()
    summary = sorted((r["recipe"], r["event_key"], r["status"], r["trigger"]) for r in runs)
    assert summary == [
        ("loops-hook", "msg_1", "succeeded", "webhook"),
        ("loops-hook", "msg_2", "succeeded", "webhook"),
        ("quo-hook", "EV1", "succeeded", "webhook"),
        ("quo-hook", "EV2", "skipped", "webhook"),
    ]
    assert [r["id"] for r in runs if r["event_key"] == "msg_1"] == [run_id]
    sent = Counter(
        (e["body"]["eventName"], e["body"].get("email") or e["body"].get("userId"), e["outcome"])
        for e in fakes.loops_events()
    )
    assert sent == Counter(
        {
            ("hooked", "ada@example.com", 200): 1,
            ("hooked", "grace@example.com", 200): 1,
            ("replied", "+15555550123", 200): 1,
        }
    )
    assert fakes.quo.count == 0
    # the secrets never reach the log
    log = runner.log
    assert "c2VjcmV0LWZvci1hY2NlcHRhbmNlLXRlc3RzLTAx" not in log
    assert "cXVvLXNpZ25pbmctc2VjcmV0LWZvci10ZXN0cw==" not in log
