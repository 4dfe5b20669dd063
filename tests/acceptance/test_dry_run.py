"""``automations run --dry-run`` on the repository's own recipes/ with no API keys: it starts,
records every run with its rendered requests, and sends nothing."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, StartRunner, dumps, openphone_headers, standard_headers

pytestmark = pytest.mark.acceptance

REPO_RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_dry_run_of_the_example_recipes_without_keys(
    tmp_path: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    directory = tmp_path / "example-recipes"
    shutil.copytree(REPO_RECIPES, directory)
    # no API keys, no QUO_FROM; only the webhook secrets, so deliveries can be verified
    runner = start_runner(
        directory,
        "--dry-run",
        keys=False,
        env={
            "QUO_FROM": None,
            "LOOPS_WEBHOOK_SECRET": "whsec_" + "a2V5MTIzNDU2",
            "QUO_WEBHOOK_SECRET": "cXVvLWtleQ==",
        },
    )
    health = runner.health()
    assert health["dry_run"] is True
    assert sorted(r["name"] for r in health["recipes"]) == sorted(
        p.stem for p in REPO_RECIPES.glob("*.yaml")
    )

    created = dumps(
        {
            "eventName": "contact.created",
            "contact": {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"},
        }
    )
    headers = standard_headers(created, "msg_dry", secret="whsec_a2V5MTIzNDU2")
    assert runner.post("/hooks/loops", created, headers).status_code == 202
    reply = dumps(
        {
            "id": "EVdry",
            "type": "message.received",
            "data": {"object": {"id": "AC1", "from": "+15555550100", "text": "Yes please"}},
        }
    )
    assert (
        runner.post(
            "/hooks/quo", reply, openphone_headers(reply, secret="cXVvLWtleQ==")
        ).status_code
        == 202
    )

    # the table recipes run their existing rows (existing_rows: run): 3 + 3 + 3 leads, 2 signups,
    # 3 leads of the SQLite table (a dry run writes nothing back)
    runner.wait_runs(None, 16)
    runner.wait_idle()
    runs = runner.runs()
    outcome = sorted(
        (r["recipe"], r["event_key"], r["status"])
        for r in runs
        if r["trigger"] != "schedule"  # a schedule may fire if started near :00
    )
    assert outcome == [
        ("crm-leads-to-loops", "1", "succeeded"),
        ("crm-leads-to-loops", "2", "succeeded"),
        ("crm-leads-to-loops", "3", "succeeded"),
        ("lead-to-loops-contact", "ada@example.com", "succeeded"),
        ("lead-to-loops-contact", "alan@example.com", "succeeded"),
        ("lead-to-loops-contact", "grace@example.com", "succeeded"),
        ("loops-contact-created", "msg_dry", "succeeded"),
        ("new-lead-to-quo", "ada@example.com", "succeeded"),
        ("new-lead-to-quo", "alan@example.com", "skipped"),  # no phone number
        ("new-lead-to-quo", "grace@example.com", "succeeded"),
        ("quo-inbound-reply", "EVdry", "succeeded"),
        ("signups-to-loops", "dorothy@example.com", "succeeded"),
        ("signups-to-loops", "katherine@example.com", "succeeded"),
        ("trial-started-event", "ada@example.com", "succeeded"),
        ("trial-started-event", "alan@example.com", "succeeded"),
        ("trial-started-event", "grace@example.com", "skipped"),
    ]
    for run in runs:
        assert run["dry_run"] is True
        assert run["status"] in ("succeeded", "skipped"), run
        # an upsert's write depends on its lookup's answer, which a dry run does not have: both
        # writes are skipped, the lookup is rendered
        assert all(
            step["status"] == "dry_run"
            or (step["status"] == "skipped" and step["id"].endswith((":update", ":create")))
            for step in run["steps"]
        ), run
    assert sum(len(r["steps"]) for r in runs if r["status"] == "succeeded") >= 13
    # the requests are rendered in full, an unset variable shown as ${NAME}
    [lead] = [
        r for r in runs if (r["recipe"], r["event_key"]) == ("new-lead-to-quo", "ada@example.com")
    ]
    sms = runner.show(lead["id"])["steps"][1]
    assert (sms["action"], sms["status"]) == ("quo.send_sms", "dry_run")
    assert sms["request"]["url"] == fakes.quo_url + "/v1/messages"
    assert sms["request"]["body"] == {
        "from": "${QUO_FROM}",
        "to": ["+15555550100"],
        "content": "Hi Ada, thanks for your interest in Analytical Engines!",
    }
    assert (fakes.quo.count, fakes.loops.count) == (0, 0)
    crm = sqlite3.connect(directory / "data" / "crm.db")
    assert crm.execute(
        "SELECT count(*) FROM leads WHERE loops_contact_id IS NOT NULL"
    ).fetchone() == (0,)
    crm.close()
    assert "error" not in runner.log.lower()
    # the variables only real runs need: one line, not a warning per recipe
    assert "[ENV001]" not in runner.log and "[ENV002]" not in runner.log
    unset = [line for line in runner.log.splitlines() if "not set here" in line]
    assert len(unset) == 1
    assert unset[0].endswith(
        "dry run: not set here (only real runs, and webhooks verified with them, need them): "
        "CRM_API_KEY, LOOPS_API_KEY, QUO_API_KEY or MATON_API_KEY, QUO_FROM"
    )
