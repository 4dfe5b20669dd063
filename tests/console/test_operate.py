"""The decisions taken through the console: the CLI's own functions, audited the same way."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from automations.execution.held import DECIDED
from automations.execution.resolve import current_actor
from automations.records import RunStatus, StepStatus
from automations.stores import SQLiteStore
from tests.console.conftest import EMAIL, ORIGIN, T0, TOKEN, Client, FakeHost, run, sms_step


def test_the_replay_confirmation_names_the_steps_it_would_send(client: TestClient) -> None:
    page = client.get("/runs/failed/replay")
    assert page.status_code == 200
    plan = re.search(r'<ul class="plan" id="plan">(.*?)</ul>', page.text, re.S)
    assert plan is not None
    assert re.findall(r"<li>(.*?)</li>", plan.group(1)) == [
        "<code>sms</code> quo.send_sms <small>(failed)</small> to +15555550123",
        "<code>event</code> loops.send_event <small>(not reached)</small>",
    ]
    assert 'id="confirm-replay">Replay: send 2 step(s)</button>' in page.text


def test_replay_records_a_new_run_hands_it_to_the_runner_and_audits_who(
    client: TestClient, store: SQLiteStore, host: FakeHost
) -> None:
    answer = client.post("/runs/failed/replay", headers=ORIGIN)
    assert answer.status_code == 303
    new_id = store.get_run("failed").replayed_as
    assert new_id is not None
    assert answer.headers["location"].startswith(f"/runs/{new_id}?notice=replay%20of%20failed")
    assert [r.id for r in host.submitted] == [new_id]
    replay = store.get_run(new_id)
    assert (replay.status, replay.replay_of) == (RunStatus.PENDING, "failed")
    [entry] = store.audit_log("failed")
    assert (entry.action, entry.actor, entry.detail) == (
        "replay",
        current_actor(),
        {"replay": new_id},
    )
    page = client.get(answer.headers["location"])
    assert "replay of failed recorded by" in page.text


def test_a_replay_in_a_dry_run_runner_is_a_dry_run_and_marks_nothing(
    client: TestClient, store: SQLiteStore, host: FakeHost
) -> None:
    host.dry_run = True
    answer = client.post("/runs/failed/replay", headers=ORIGIN)
    assert answer.status_code == 303
    [replay] = host.submitted
    assert replay.event_key.startswith(f"{EMAIL}#replay-dry-run-")
    assert replay.replay_of == "failed"
    assert store.get_run("failed").replayed_as is None  # still replayable for real
    assert store.audit_log() == []


def test_a_second_replay_is_refused_and_names_the_replay(
    client: TestClient, store: SQLiteStore, host: FakeHost
) -> None:
    client.post("/runs/failed/replay", headers=ORIGIN)
    again = client.post("/runs/failed/replay", headers=ORIGIN)
    assert again.status_code == 409
    new_id = store.get_run("failed").replayed_as
    assert f"run failed was replayed already: replayed as {new_id}" in again.text
    assert len(host.submitted) == 1
    assert len(store.audit_log("failed")) == 1


@pytest.mark.parametrize(
    ("run_id", "why"),
    [
        ("unknown", "may or may not have been sent"),
        ("ok", "succeeded: nothing to replay"),
        ("pending", "is pending: the runner executes it"),
        ("held1", "is held by its recipe&#39;s flood_limit"),
    ],
)
def test_replay_is_refused_where_the_cli_refuses_it(
    client: TestClient, host: FakeHost, run_id: str, why: str
) -> None:
    answer = client.post(f"/runs/{run_id}/replay", headers=ORIGIN)
    assert answer.status_code == 409
    assert why in answer.text
    assert host.submitted == []


def test_it_was_sent_resolves_the_unknown_step_without_sending(
    client: TestClient, store: SQLiteStore, host: FakeHost
) -> None:
    answer = client.post(
        "/runs/unknown/steps/sms/resolve",
        data={"outcome": "sent", "note": "seen in Quo's inbox"},
        headers=ORIGIN,
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/runs/unknown?notice=step%20sms%20was%20sent")
    run = store.get_run("unknown")
    # the version that ran has two steps: the second still has to run (a replay runs it)
    assert run.status is RunStatus.FAILED
    assert (run.steps[0].status, run.steps[0].resolution) == (StepStatus.SUCCEEDED, "sent")
    [entry] = store.audit_log("unknown")
    assert (entry.action, entry.step_index, entry.detail) == (
        "resolve",
        0,
        {"step": "sms", "outcome": "sent", "note": "seen in Quo's inbox"},
    )
    assert host.submitted == []
    # the sms is never sent again: a replay now plans the second step only
    page = client.get("/runs/unknown/replay").text
    assert re.findall(r"<code>(\w+)</code> [\w.]+ <small>", page) == ["event"]


def test_it_was_not_sent_lets_a_replay_send_it(client: TestClient, store: SQLiteStore) -> None:
    client.post("/runs/unknown/steps/1/resolve", data={"outcome": "not-sent"}, headers=ORIGIN)
    run = store.get_run("unknown")
    assert (run.status, run.steps[0].resolution) == (RunStatus.FAILED, "not-sent")
    assert 'id="replay"' in client.get("/runs/unknown").text


def test_resolving_a_known_outcome_is_refused(client: TestClient, store: SQLiteStore) -> None:
    answer = client.post("/runs/ok/steps/sms/resolve", data={"outcome": "not-sent"}, headers=ORIGIN)
    assert answer.status_code == 409
    assert "is succeeded, not unknown: only an unknown outcome is resolved" in answer.text
    bad = client.post("/runs/unknown/steps/sms/resolve", data={"outcome": "maybe"}, headers=ORIGIN)
    assert bad.status_code == 400
    assert store.get_run("unknown").status is RunStatus.UNKNOWN
    assert store.audit_log() == []


@pytest.mark.parametrize(("decision", "status"), [("approve", "pending"), ("discard", "discarded")])
def test_held_runs_are_approved_or_discarded_with_the_login_name(
    console: Client, store: SQLiteStore, decision: str, status: str
) -> None:
    client = console(TOKEN)
    client.post("/login", data={"token": TOKEN, "name": "Grace Hopper"}, headers=ORIGIN)
    answer = client.post(f"/recipes/flood/{decision}", headers=ORIGIN)
    assert answer.status_code == 303
    verb = "approved" if decision == "approve" else "discarded"
    assert (
        answer.headers["location"] == f"/recipes?notice={verb}%202%20held%20run%28s%29%20of%20flood"
    )
    assert {store.get_run(i).status.value for i in ("held1", "held2")} == {status}
    [entry] = store.audit_log()
    assert (entry.actor, entry.action, entry.detail) == (
        "Grace Hopper",
        decision,
        {"recipe": "flood", "runs": 2},
    )
    assert store.get_state(*DECIDED) == "1"  # a running runner notices within a second
    again = client.post(f"/recipes/flood/{decision}", headers=ORIGIN)
    assert "no%20held%20runs%20for%20flood" in again.headers["location"]


def test_an_unknown_held_decision_is_a_404(client: TestClient) -> None:
    assert client.post("/recipes/flood/explode", headers=ORIGIN).status_code == 404


# -- bulk replay -----------------------------------------------------------------------------


def _more_failures(store: SQLiteStore, n: int) -> None:
    for i in range(n):
        rid = f"f{i:02d}"
        store.enqueue(run(rid, 50 + i, RunStatus.FAILED, steps=(sms_step(rid, StepStatus.FAILED),)))


def test_the_bulk_preview_counts_runs_and_requests(client: TestClient, store: SQLiteStore) -> None:
    _more_failures(store, 4)
    page = client.get("/bulk?recipe=texts&preview=1")
    assert page.status_code == 200
    assert "6 failed run(s) would be replayed" in page.text
    # the xss run has no steps recorded: the recipe's two steps are planned for it too
    rows = re.findall(
        r"<tr><td><code>(\w+)</code></td><td>([\w.]+)</td><td>(\d+)</td></tr>", page.text
    )
    assert rows == [("event", "loops.send_event", "6"), ("sms", "quo.send_sms", "6")]
    assert '<input type="hidden" name="expected" value="6">' in page.text
    # the numbers texted again, masked; the run without a recorded request has none
    assert "SMS would go again to 5 number(s): +1••••••0123, +1••••••0123" in page.text
    assert "+15555550123" not in page.text
    assert store.audit_log() == []  # a preview decides nothing


def test_a_bulk_preview_pins_a_duration_to_the_times_it_meant(
    console: Client, store: SQLiteStore
) -> None:
    client = console(clock=lambda: T0 + 3600)
    page = client.get("/bulk?since=2h&preview=1").text
    assert '<input type="hidden" name="since" value="2026-05-28T19:26:40+00:00">' in page
    assert "2 failed run(s) would be replayed" in page


def test_the_bulk_replay_replays_what_was_previewed_once(
    client: TestClient, store: SQLiteStore, host: FakeHost
) -> None:
    _more_failures(store, 4)
    answer = client.post("/bulk/replay", data={"recipe": "texts", "expected": "6"}, headers=ORIGIN)
    assert answer.status_code == 200
    assert "6 replay(s) recorded by" in answer.text
    assert len(host.submitted) == 6
    assert {r.replay_of for r in host.submitted} == {"failed", "xss", "f00", "f01", "f02", "f03"}
    audit = store.audit_log()
    assert [e.action for e in audit] == ["replay"] * 6 + ["bulk-replay"]
    assert audit[-1].detail == {
        "filter": "recipe=texts",
        "previewed": 6,
        "replayed": 6,
        "refused": 0,
    }
    # replayed once: a second bulk replay finds them replayed already
    second = client.get("/bulk?recipe=texts&preview=1").text
    assert "0 failed run(s) would be replayed" in second
    assert "6 left out: replayed already" in second


def test_a_bulk_replay_is_capped(console: Client, store: SQLiteStore, host: FakeHost) -> None:
    _more_failures(store, 10)
    client = console(bulk_cap=3)
    preview = client.get("/bulk?preview=1").text
    assert "3 failed run(s) would be replayed (the newest 3: more match)" in preview
    client.post("/bulk/replay", data={"expected": "5000"}, headers=ORIGIN)
    assert [r.replay_of for r in host.submitted] == ["f09", "f08", "f07"]


def test_a_bulk_replay_never_takes_a_run_with_an_unknown_step(
    client: TestClient, store: SQLiteStore, host: FakeHost
) -> None:
    client.post("/runs/unknown/steps/sms/resolve", data={"outcome": "not-sent"}, headers=ORIGIN)
    store.enqueue(run("u2", 60, RunStatus.FAILED, steps=(sms_step("u2", StepStatus.UNKNOWN),)))
    client.post("/bulk/replay", data={"expected": "100"}, headers=ORIGIN)
    replayed = {r.replay_of for r in host.submitted}
    assert "u2" not in replayed
    assert replayed == {"failed", "xss", "unknown"}


def test_a_bulk_replay_without_a_preview_is_refused(client: TestClient, host: FakeHost) -> None:
    answer = client.post("/bulk/replay", data={"recipe": "texts"}, headers=ORIGIN)
    assert answer.status_code == 400
    assert "preview it first" in answer.text
    assert host.submitted == []
