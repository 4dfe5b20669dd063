"""The execution core against fake Quo and Loops: what is sent, retried, recorded."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, replace

import httpx
import pytest

from automations.execution.executor import new_run
from automations.records import RunRecord, RunStatus, StepStatus, TriggerKind
from tests.execution.conftest import ENV, ROW, Crash, Harness
from tests.fakes import TIMEOUT_AFTER_RECEIPT


def test_happy_path_is_recorded_step_by_step(harness: Harness) -> None:
    run = harness.run()
    assert run.status is RunStatus.SUCCEEDED
    assert [s.status for s in run.steps] == [StepStatus.SUCCEEDED] * 3
    assert [s.http_status for s in run.steps] == [201, 202, 200]
    contact, sms, event = run.steps
    assert sms.request is not None
    assert sms.request["url"] == "https://api.openphone.com/v1/messages"
    # the connection's headers (the API key) are not repeated in every step's record
    assert "headers" not in sms.request
    assert harness.quo.received[1].headers["authorization"] == "quo-test-key"
    # the SMS used the contact id from the first step's response
    sent = harness.quo.received[1].body
    assert sent["to"] == ["+15555550100"]
    assert sent["content"] == f"Hi Ada! (contact {contact.response_body['data']['id']})"
    # every request was valid for the vendor's own spec (the fakes answer 400 otherwise)
    assert [r.outcome for r in harness.quo.received] == [201, 202]
    assert [r.outcome for r in harness.loops.received] == [200]
    assert harness.loops.received[0].headers["idempotency-key"] == event.idempotency_key


def test_audit_never_holds_a_secret(harness: Harness) -> None:
    run = harness.run()
    dumped = json.dumps(asdict(run), default=str)
    for secret in ("quo-test-key", "loops-test-key", "+15555550199"):
        assert secret not in dumped
    assert run.steps[1].request is not None
    assert run.steps[1].request["body"]["from"] == "${QUO_FROM}"


def test_condition_false_is_a_skipped_run(harness: Harness) -> None:
    run = harness.run({**ROW, "Phone": ""})
    assert run.status is RunStatus.SKIPPED
    assert run.condition is False
    assert run.steps == ()
    assert harness.quo.count == 0


def test_action_condition_skips_one_step(harness: Harness) -> None:
    run = harness.run({**ROW, "Plan": "free"})
    assert run.status is RunStatus.SUCCEEDED
    assert run.steps[2].status is StepStatus.SKIPPED
    assert harness.loops.count == 0


def test_sms_timeout_is_unknown_and_never_resent(harness: Harness) -> None:
    harness.script_for("/v1/messages", TIMEOUT_AFTER_RECEIPT)
    run = harness.run()
    assert run.status is RunStatus.UNKNOWN
    assert run.steps[1].status is StepStatus.UNKNOWN
    assert len([r for r in harness.quo.received if r.path == "/v1/messages"]) == 1
    # resuming the run (a restart) does not send it again either
    again = harness.run(existing=harness.store.get_run(run.id))
    assert again.status is RunStatus.UNKNOWN
    assert len([r for r in harness.quo.received if r.path == "/v1/messages"]) == 1
    assert harness.loops.count == 0


def test_500_then_202_sends_one_sms_and_the_step_is_unknown(harness: Harness) -> None:
    """Issue 8: a 500 to ``POST /v1/messages`` was retried and the customer got two texts."""
    harness.script_for("/v1/messages", 500)
    run = harness.run()
    assert run.status is RunStatus.UNKNOWN
    assert [s.status for s in run.steps] == [StepStatus.SUCCEEDED, StepStatus.UNKNOWN]
    assert (run.steps[1].attempts, run.steps[1].http_status) == (1, 500)
    assert [r.outcome for r in harness.quo.received] == [201, 500]
    assert len(harness.quo.sent_messages) == 0
    assert harness.loops.count == 0


def test_500_then_201_creates_one_contact_and_the_step_is_unknown(harness: Harness) -> None:
    harness.script_for("/v1/contacts", 500)
    run = harness.run()
    assert run.status is RunStatus.UNKNOWN
    assert [s.status for s in run.steps] == [StepStatus.UNKNOWN]
    assert [r.outcome for r in harness.quo.received] == [500]


def test_429_then_202_is_retried_it_was_not_processed(harness: Harness) -> None:
    harness.script_for("/v1/messages", 429)
    run = harness.run()
    assert run.status is RunStatus.SUCCEEDED
    assert run.steps[1].attempts == 2
    assert [r.outcome for r in harness.quo.received] == [201, 429, 202]


def test_402_fails_at_once_with_the_credits_advice(harness: Harness) -> None:
    harness.script_for("/v1/messages", 402)
    run = harness.run()
    assert run.status is RunStatus.FAILED
    sms = run.steps[1]
    assert sms.status is StepStatus.FAILED
    assert sms.attempts == 1
    assert sms.http_status == 402
    assert sms.error is not None and "credits" in sms.error
    assert len(harness.quo.received) == 2
    assert len(run.steps) == 2  # the run stopped at the failed step


def test_a2p_error_is_explained(harness: Harness) -> None:
    harness.script_for("/v1/messages", 400)
    run = harness.run()
    sms = run.steps[1]
    assert sms.error_code == "0206400"
    assert sms.error is not None and "10DLC" in sms.error


def test_unnormalizable_phone_fails_before_sending(harness: Harness) -> None:
    run = harness.run({**ROW, "Phone": "call me"})
    assert run.status is RunStatus.FAILED
    assert run.steps[0].status is StepStatus.FAILED
    assert run.steps[0].error is not None and "phoneNumbers[0].value" in run.steps[0].error
    assert harness.quo.count == 0


def test_missing_key_names_the_variable(harness: Harness) -> None:
    del harness.env["QUO_API_KEY"]
    run = harness.run()
    assert run.status is RunStatus.FAILED
    assert "QUO_API_KEY" in (run.steps[0].error or "")
    assert harness.quo.count == 0


def test_dry_run_sends_nothing_and_records_requests(harness: Harness) -> None:
    harness.env.pop("QUO_FROM")
    run = harness.run(dry_run=True)
    assert run.status is RunStatus.SUCCEEDED and run.dry_run
    assert [s.status for s in run.steps] == [StepStatus.DRY_RUN] * 3
    assert run.steps[1].request is not None
    assert run.steps[1].request["body"]["from"] == "${QUO_FROM}"
    assert harness.quo.count == 0 and harness.loops.count == 0


def test_loops_retry_after_lost_answer_reuses_the_key(harness: Harness) -> None:
    harness.loops.script(TIMEOUT_AFTER_RECEIPT)
    run = harness.run()
    assert run.status is RunStatus.SUCCEEDED
    keys = [r.headers["idempotency-key"] for r in harness.loops.received]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert [r.outcome for r in harness.loops.received][-1] == 409


def test_crash_while_sending_then_resolve_and_replay_sends_once(harness: Harness) -> None:
    def die_on_sms(request: httpx.Request) -> None:
        if request.url.path == "/v1/messages":
            raise Crash

    harness.before = die_on_sms
    with contextlib.suppress(Crash):
        harness.run()
    (left,) = harness.store.unfinished()
    assert left.status is RunStatus.RUNNING
    assert [s.status for s in left.steps] == [StepStatus.SUCCEEDED, StepStatus.SENDING]
    harness.before = None

    import asyncio

    from automations.errors import RefusedError
    from automations.execution.replay import replay
    from automations.execution.resolve import resolve

    def replay_now(run: RunRecord) -> RunRecord:
        async def go() -> RunRecord:
            async with harness.connections() as conns:
                return await replay(harness.executor(conns), run, harness.recipe, actor="ops")

        return asyncio.run(go())

    # a running run is the runner's to resume: a replay now could send the SMS twice
    with pytest.raises(RefusedError, match="is running: the runner executes it"):
        replay_now(left)
    resumed = harness.run(existing=left)
    assert resumed.status is RunStatus.UNKNOWN
    # an unknown step is decided by a person first
    with pytest.raises(RefusedError, match=f"automations resolve {left.id} sms sent"):
        replay_now(harness.store.get_run(left.id))
    resolve(harness.store, left.id, "sms", "not-sent", actor="ops", total_steps=3)
    final = replay_now(harness.store.get_run(left.id))
    assert final.status is RunStatus.SUCCEEDED
    assert [r.path for r in harness.quo.received] == ["/v1/contacts", "/v1/messages"]
    assert harness.loops.count == 1


def test_resume_after_crash_marks_the_sms_unknown(harness: Harness) -> None:
    def lose_sms_answer(request: httpx.Request) -> None:
        if request.url.path == "/v1/messages":
            raise Crash

    harness.after = lose_sms_answer
    with contextlib.suppress(Crash):
        harness.run()
    harness.after = None
    (left,) = harness.store.unfinished()
    resumed = harness.run(existing=left)
    assert resumed.status is RunStatus.UNKNOWN
    assert resumed.steps[1].status is StepStatus.UNKNOWN
    assert len([r for r in harness.quo.received if r.path == "/v1/messages"]) == 1


def test_resumed_loops_step_reuses_its_idempotency_key(harness: Harness) -> None:
    def lose_event_answer(request: httpx.Request) -> None:
        if request.url.host == "app.loops.so":
            raise Crash

    harness.after = lose_event_answer
    with contextlib.suppress(Crash):
        harness.run()
    harness.after = None
    (left,) = harness.store.unfinished()
    resumed = harness.run(existing=left)
    assert resumed.status is RunStatus.SUCCEEDED
    keys = [r.headers["idempotency-key"] for r in harness.loops.received]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert harness.loops.received[1].outcome == 409
    assert len([r for r in harness.quo.received if r.path == "/v1/messages"]) == 1


def test_an_http_request_keeps_its_own_headers_masked(harness: Harness) -> None:
    from automations.connections import Connections
    from automations.execution.executor import Executor
    from automations.outbound import Connection, OutboundRequest
    from automations.redact import Redactor

    req = OutboundRequest(
        Connection.HTTP,
        "POST",
        "https://crm.example.com/a",
        json={"a": 1},
        headers=(("Authorization", "Bearer crm-secret-123"), ("X-Trace", "t1")),
    )
    executor = Executor(harness.store, Connections.for_preview({}), {})
    record = executor._describe(req, Redactor())
    assert record == {
        "method": "POST",
        "url": "https://crm.example.com/a",
        "headers": {"Authorization": "***", "X-Trace": "t1"},
        "body": {"a": 1},
    }


def test_a_resumed_run_gets_the_version_it_started_with(harness: Harness) -> None:
    from automations.execution.versions import load_version, remember_version

    remember_version(harness.store, harness.recipe)
    source = harness.recipe.source
    source.write_text(harness.recipe.text.replace("leadTexted", "leadChanged"))
    run = harness.store.enqueue(new_run(harness.recipe.name, TriggerKind.MANUAL, "v1", ROW))[0]
    run = replace(run, recipe_hash=harness.recipe.content_hash)
    resumed = load_version(harness.store, run, ENV, prefer_current=False)
    assert resumed.content_hash == harness.recipe.content_hash
    replayed = load_version(harness.store, run, ENV)
    assert replayed.content_hash != harness.recipe.content_hash  # a replay uses today's file
