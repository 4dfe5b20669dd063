"""Never twice on the paths an operator takes (issue 8), through the real command line against
Quo and Loops fakes on loopback: ambiguous answers become ``unknown``, a replay is a decision
taken once, an unknown step is resolved by a person, a replayed Loops event keeps its key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import _SCRUBBED, QUO_FROM, Fakes, write_recipe
from tests.fakes import TIMEOUT_AFTER_RECEIPT

pytestmark = pytest.mark.acceptance

ROW = json.dumps({"Email": "ada@example.com", "Phone": "(555) 555-0100", "First Name": "Ada"})

SMS = """
name: text-lead
trigger:
  webhook: {path: /hooks/lead, verify: {scheme: none}}
actions:
  - id: sms
    quo.send_sms:
      from: ${QUO_FROM}
      to: [/Phone]
      content: "Hi {/First Name}!"
"""

CONTACT = """
name: contact-lead
trigger:
  webhook: {path: /hooks/contact, verify: {scheme: none}}
actions:
  - id: contact
    quo.create_contact:
      defaultFields:
        firstName: /First Name
        phoneNumbers: [{name: mobile, value: /Phone}]
"""

EVENT = """
name: event-lead
trigger:
  webhook: {path: /hooks/event, verify: {scheme: none}}
actions:
  - id: welcome
    loops.send_event:
      email: /Email
      eventName: signup
"""


class Cli:
    """``automations ...`` as a subprocess in ``tmp_path``, talking to the fakes."""

    def __init__(self, tmp_path: Path, fakes: Fakes) -> None:
        self.cwd = tmp_path
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        self.env |= fakes.env() | {"QUO_FROM": QUO_FROM, "AUTOMATIONS_DB": "runs.db"}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "automations", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def runs(self) -> list[dict[str, Any]]:
        out = self("runs", "--format", "json")
        assert out.returncode == 0, out.stderr
        result: list[dict[str, Any]] = json.loads(out.stdout)
        return result

    def show(self, run_id: str) -> dict[str, Any]:
        out = self("show", run_id, "--format", "json")
        assert out.returncode == 0, out.stderr
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def exec(self, recipe: Path) -> tuple[subprocess.CompletedProcess[str], str]:
        res = self("exec", str(recipe), "--row", ROW)
        return res, self.runs()[0]["id"]


@pytest.fixture
def cli(tmp_path: Path, fakes: Fakes) -> Cli:
    return Cli(tmp_path, fakes)


def sms_requests(fakes: Fakes) -> int:
    return sum(1 for r in list(fakes.quo.received) if r.path == "/v1/messages")


@pytest.mark.parametrize(
    ("recipe", "path", "step"),
    [(SMS, "/v1/messages", "sms"), (CONTACT, "/v1/contacts", "contact")],
    ids=["sms", "contact"],
)
def test_500_then_success_sends_once_and_the_step_is_unknown(
    cli: Cli, fakes: Fakes, tmp_path: Path, recipe: str, path: str, step: str
) -> None:
    fakes.quo.script(500)  # the next request would have been accepted
    res, run_id = cli.exec(write_recipe(tmp_path, "r.yaml", recipe))
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"1. {step} quo." in res.stdout and ": unknown HTTP 500" in res.stdout
    assert [(r.path, r.outcome) for r in fakes.quo.received] == [(path, 500)]
    assert (len(fakes.quo.sent_messages), len(fakes.quo.contacts)) == (0, 0)
    shown = cli.show(run_id)
    assert shown["status"] == "unknown"
    [recorded] = shown["steps"]
    assert (recorded["status"], recorded["http_status"], recorded["attempts"]) == (
        "unknown",
        500,
        1,
    )
    assert f"automations resolve {run_id} {step} sent" in recorded["error"]


def test_replay_three_times_sends_one_sms(cli: Cli, fakes: Fakes, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "sms.yaml", SMS)
    fakes.quo.script(402)  # no credits: refused, nothing sent
    res, original = cli.exec(recipe)
    assert res.returncode == 1
    # a dry run first: it sends nothing and does not count as the replay
    dry = cli("replay", original, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert cli.show(original)["replayed_as"] is None

    first = cli("replay", original, "--by", "ops@example.com")
    assert first.returncode == 0, first.stdout + first.stderr
    replay_id = cli.runs()[0]["id"]
    for _ in range(2):
        again = cli("replay", original)
        assert again.returncode == 1
        assert again.stderr == (
            f"error: run {original} was replayed already: replayed as {replay_id} (succeeded); "
            f"replay {replay_id} if it failed\n"
        )
    assert cli("replay", replay_id).returncode == 1  # the newest run succeeded: nothing to do
    assert len(fakes.quo.sent_messages) == 1
    assert sms_requests(fakes) == 2  # the 402, then the replay's one text

    # the chain, both ways, in runs and show
    by_id = {r["id"]: r for r in cli.runs()}
    assert (by_id[original]["replayed_as"], by_id[replay_id]["replay_of"]) == (
        replay_id,
        original,
    )
    assert by_id[original]["status"] == "failed"
    table = cli("runs").stdout
    assert f"replayed as {replay_id[:12]}" in table and f"replay of {original[:12]}" in table
    [decision] = cli.show(original)["audit"]
    assert (decision["actor"], decision["action"], decision["detail"]) == (
        "ops@example.com",
        "replay",
        {"replay": replay_id},
    )


def test_replaying_the_newest_run_of_the_chain_works(
    cli: Cli, fakes: Fakes, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, "sms.yaml", SMS)
    fakes.quo.script(402, 402)
    _, original = cli.exec(recipe)
    assert cli("replay", original).returncode == 1  # refused by Quo again
    second = cli.runs()[0]["id"]
    refused = cli("replay", original)
    assert f"replay {second} if it failed" in refused.stderr
    assert cli("replay", second).returncode == 0
    third = cli.runs()[0]["id"]
    assert [r["status"] for r in cli.runs()] == ["succeeded", "failed", "failed"]
    assert cli.show(third)["replay_of"] == second
    assert cli.show(second)["replayed_as"] == third
    assert (len(fakes.quo.sent_messages), sms_requests(fakes)) == (1, 3)


def test_an_unknown_sms_is_resolved_before_it_is_replayed(
    cli: Cli, fakes: Fakes, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, "sms.yaml", SMS)
    fakes.quo.script(503)
    _, run_id = cli.exec(recipe)
    refused = cli("replay", run_id)
    assert refused.returncode == 1
    assert f"then record what happened: `automations resolve {run_id} sms sent`" in refused.stderr
    assert sms_requests(fakes) == 1

    bad = cli("resolve", run_id, "nope", "sent")
    assert (bad.returncode, bad.stderr) == (
        1,
        f"error: run {run_id} has no step 'nope'; its steps: 1 (sms)\n",
    )
    res = cli("resolve", run_id, "1", "not-sent", "--by", "ada", "--note", "not in Quo's inbox")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == f"run {run_id}: step 1 resolved as not-sent; run failed"
    again = cli("resolve", run_id, "sms", "sent")  # decided already: never overwritten
    assert again.returncode == 1
    assert "is failed (resolved by hand: not-sent), not unknown" in again.stderr

    assert cli("replay", run_id).returncode == 0
    assert (sms_requests(fakes), len(fakes.quo.sent_messages)) == (2, 1)
    shown = cli.show(run_id)
    assert shown["steps"][0]["resolution"] == "not-sent"
    audit = shown["audit"]
    assert [(a["actor"], a["action"], a["step"], a["detail"]) for a in audit] == [
        ("ada", "resolve", 0, {"step": "sms", "outcome": "not-sent", "note": "not in Quo's inbox"}),
        (audit[1]["actor"], "replay", None, {"replay": shown["replayed_as"]}),
    ]


def test_an_unknown_sms_resolved_as_sent_is_never_sent_again(
    cli: Cli, fakes: Fakes, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, "sms.yaml", SMS)
    fakes.quo.script(TIMEOUT_AFTER_RECEIPT)  # Quo took it, the answer was lost
    fakes.quo.hang_seconds = 0.2
    _, run_id = cli.exec(recipe)
    assert cli.show(run_id)["status"] == "unknown"
    res = cli("resolve", run_id, "sms", "sent", "--by", "ada")
    assert res.returncode == 0, res.stderr
    shown = cli.show(run_id)
    assert (shown["status"], shown["error"]) == ("succeeded", None)
    assert (shown["steps"][0]["status"], shown["steps"][0]["resolution"]) == ("succeeded", "sent")
    assert cli("replay", run_id).returncode == 1
    assert (sms_requests(fakes), len(fakes.quo.sent_messages)) == (1, 1)


def test_a_replayed_loops_event_reuses_its_idempotency_key(
    cli: Cli, fakes: Fakes, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, "event.yaml", EVENT)
    # Loops accepts the event but the answer is lost; the retry is then refused: the step fails
    # although Loops has the event
    fakes.loops.hang_seconds = 0.2
    fakes.loops.script(TIMEOUT_AFTER_RECEIPT, 400)
    res, original = cli.exec(recipe)
    assert res.returncode == 1, res.stdout
    key = cli.show(original)["steps"][0]["idempotency_key"]
    assert key == f"automations-{original}-0"

    assert cli("replay", original).returncode == 0
    replay_id = cli.runs()[0]["id"]
    sent = fakes.loops_events()
    assert [(e["key"], e["outcome"]) for e in sent] == [
        (key, "ReadTimeout"),  # processed; the client got a 504 from the loopback server
        (key, 400),
        (key, 409),
    ]
    assert len(fakes.loops.events) == 1  # one event, however many times it was sent
    step = cli.show(replay_id)["steps"][0]
    assert (step["status"], step["http_status"], step["idempotency_key"]) == ("succeeded", 409, key)


def test_a_run_that_cannot_render_fails_with_nothing_sent(
    cli: Cli, fakes: Fakes, tmp_path: Path
) -> None:
    """Issue 8: step 1 (create contact) was sent, then step 2 failed on a phone number that
    could never be normalized."""
    recipe = write_recipe(
        tmp_path,
        "two.yaml",
        CONTACT.replace("name: contact-lead", "name: contact-then-text")
        + """  - id: sms
    quo.send_sms:
      from: ${QUO_FROM}
      to: [/Mobile]
      content: "Hi {/First Name}!"
""",
    )
    row = json.dumps({"First Name": "Ada", "Phone": "(555) 555-0100", "Mobile": "ask Bob"})
    res = cli("exec", str(recipe), "--row", row)
    assert res.returncode == 1
    assert fakes.quo.count == 0
    [run] = cli.runs()
    assert run["status"] == "failed"
    assert [(s["id"], s["status"]) for s in run["steps"]] == [("sms", "failed")]
    assert run["error"].startswith("sms: to[0]: ")
    assert run["error"].endswith("(checked before sending: nothing was sent)")
    assert "2. sms quo.send_sms: failed" in res.stdout
