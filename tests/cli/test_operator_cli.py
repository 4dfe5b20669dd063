"""The operator's commands: ``exec --key``, ``runs`` (key, duration, error, ``--key``) and
``show``'s timeline, through the real command line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import REPO

pytestmark = pytest.mark.acceptance
Cli = Callable[..., subprocess.CompletedProcess[str]]

SMS_ONLY = """name: sms-only
trigger:
  table: {path: data/leads.csv, key: Email}
actions:
  - id: hello
    quo.send_sms:
      from: ${QUO_FROM}
      to: [/Phone]
      content: "Hi {/First Name}"
"""


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    (tmp_path / "recipes" / "sms-only.yaml").write_text(SMS_ONLY)
    return tmp_path / "recipes"


def runs_json(cli: Cli, *args: str) -> list[dict[str, object]]:
    res = cli("runs", "--format", "json", *args)
    assert res.returncode == 0, res.stderr
    out: list[dict[str, object]] = json.loads(res.stdout)
    return out


@pytest.mark.parametrize(
    ("row", "kind"), [('["a"]', "a list"), ('"ada"', "text"), ("null", "null"), ("3", "a number")]
)
def test_exec_row_must_be_an_object(cli: Cli, recipes: Path, row: str, kind: str) -> None:
    res = cli("exec", str(recipes / "new-lead-to-quo.yaml"), "--row", row, "--dry-run")
    assert res.returncode == 2
    assert res.stderr.splitlines()[-1] == (
        "Error: Invalid value for --row: must be a JSON object with the row's columns, like "
        f"""'{{"Email": "ada@example.com", "Phone": "+15555550100"}}', not {kind}"""
    )
    assert not (recipes.parent / "automations.db").exists()  # nothing recorded, nothing sent


def test_exec_key_runs_that_row_of_the_table(cli: Cli, recipes: Path) -> None:
    res = cli(
        "exec", str(recipes / "new-lead-to-quo.yaml"), "--key", "grace@example.com", "--dry-run"
    )
    assert res.returncode == 0, res.stderr
    [run] = runs_json(cli)
    shown = json.loads(cli("show", str(run["id"]), "--format", "json").stdout)
    assert shown["trigger"] == "manual"
    assert shown["event"]["First Name"] == "Grace"
    assert shown["steps"][1]["request"]["body"]["to"] == ["+15555550101"]
    # found again by the row's key, beside the table's own runs of it
    assert [r["id"] for r in runs_json(cli, "--key", "grace@example.com")] == [run["id"]]


def test_exec_key_mistakes_are_usage_errors(cli: Cli, recipes: Path) -> None:
    lead = str(recipes / "new-lead-to-quo.yaml")
    res = cli("exec", lead, "--key", "nobody@example.com")
    assert (res.returncode, res.stderr.splitlines()[-1]) == (
        2,
        'Error: no row of leads.csv has Email "nobody@example.com"',
    )
    res = cli("exec", lead)
    assert res.returncode == 2
    assert "give the row: --row JSON, or --key VALUE" in res.stderr
    res = cli("exec", str(recipes / "quo-inbound-reply.yaml"), "--key", "x")
    assert res.returncode == 2
    assert "has no table to read a row from (its trigger is webhook)" in res.stderr


def test_runs_table_shows_key_duration_and_the_error(cli: Cli, recipes: Path) -> None:
    res = cli(
        "exec", str(recipes / "sms-only.yaml"), "--key", "ada@example.com", env={"QUO_API_KEY": "k"}
    )
    assert res.returncode == 1
    lines = cli("runs").stdout.splitlines()
    assert lines[0] == (
        "ID            CREATED (UTC)        RECIPE                  KEY                         "
        "STATUS                 TOOK  STEPS                     ERROR"
    )
    row = lines[1]
    assert re.fullmatch(
        r"[0-9a-f]{12}  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  sms-only {16}"
        r"ada@example\.com {13}failed {13} +\d+ms  send_sms:failed {11}"
        r"hello: environment variable QUO_FROM is not set; set it before running this rec…",
        row,
    ), row


def test_show_prints_a_timeline(cli: Cli, recipes: Path) -> None:
    lead = str(recipes / "new-lead-to-quo.yaml")
    assert cli("exec", lead, "--key", "ada@example.com", "--dry-run").returncode == 0
    [run] = runs_json(cli)
    res = cli("show", str(run["id"])[:8])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"run {run['id']}  new-lead-to-quo  succeeded (dry run)"
    assert re.fullmatch(r"  event      manual ada@example\.com@[0-9a-f]{16}  at .* UTC", lines[1])
    assert lines[3] == "  condition  Phone != null && Phone != ''  ->  true: the steps ran"
    assert lines[4] == "  1. contact  quo.create_contact  dry_run"
    assert lines[5] == "       request   POST https://api.openphone.com/v1/contacts"
    assert lines[7] == "  2. welcome  quo.send_sms  dry_run"
    assert lines[8] == "       request   POST https://api.openphone.com/v1/messages"
    assert lines[9] == (
        '                 {"from": "${QUO_FROM}", "to": ["+15555550100"], "content": '
        '"Hi Ada, thanks for your interest in Analytical Engines!"}'
    )
    assert re.fullmatch(r"  finished   .* UTC, took \d+ms", lines[10])


def test_status_reads_the_backlog_from_the_store(cli: Cli, recipes: Path, tmp_path: Path) -> None:
    import dataclasses
    import time

    from automations.records import RunStatus, StepStatus
    from automations.stores import SQLiteStore
    from tests.stores.factories import make_run, make_step

    now = time.time()
    store = SQLiteStore(tmp_path / "automations.db")
    for i in range(4):
        store.enqueue(make_run(f"wait{i}", recipe="new-lead-to-quo", status=RunStatus.PENDING))
    store.enqueue(make_run("done", recipe="new-lead-to-quo", status=RunStatus.SUCCEEDED))
    for index, action in enumerate(["quo.create_contact", "quo.send_sms"]):
        step = make_step("done", index, status=StepStatus.SUCCEEDED)
        store.put_step(
            dataclasses.replace(step, action=action, started_at=now - 5, finished_at=now - 4)
        )
    store.close()
    res = cli("status", str(recipes))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "RECIPE                            QUEUED runs  SENT LAST MIN  DRAINS IN",
        "new-lead-to-quo                             4              2  ~40s",
        "",
        "CONNECTION                    QUEUED requests  SENT LAST MIN  DRAINS IN",
        "quo                                         8              2  ~40s",
    ]
    assert json.loads(cli("status", "--format", "json").stdout)["recipes"] == [
        {
            "name": "new-lead-to-quo",
            "queued": 4,
            "sent_last_minute": 2,
            "drains_in_s": 40.0,
            "paused": None,
        }
    ]


def test_show_of_a_run_whose_version_is_not_recorded(cli: Cli, tmp_path: Path) -> None:
    import dataclasses

    from automations.records import RunStatus, StepStatus
    from automations.stores import SQLiteStore
    from tests.stores.factories import make_run, make_step

    store = SQLiteStore(tmp_path / "automations.db")
    run = make_run("r1", recipe="gone", status=RunStatus.FAILED)
    store.enqueue(dataclasses.replace(run, condition=True))
    store.put_step(make_step("r1", 0, status=StepStatus.FAILED, error="HTTP 422: bad email\nmore"))
    store.close()
    lines = cli("show", "r1").stdout.splitlines()
    assert lines[0] == "run r1  gone  failed"
    assert lines[2] == (
        "  condition  (the expression of the version that ran is not recorded)  ->  "
        "true: the steps ran"
    )
    assert lines[3] == "  1. step0  loops.send_event  failed  12ms"
    assert lines[4] == "       request   POST https://app.loops.so/api/v1/events/send"
    assert lines[5] == "       error     HTTP 422: bad email"


def test_status_counts_webhooks_waiting_in_the_inbox(cli: Cli, tmp_path: Path) -> None:
    """Events the intake process recorded (and answered) while the runner was stopped wait in
    the inbox file; ``status`` says so instead of showing an empty backlog."""
    from automations.execution.executor import new_run
    from automations.records import TriggerKind
    from automations.stores import SQLiteStore
    from automations.stores.sqlite_inbox import InboxMover, SQLiteInbox

    db = tmp_path / "automations.db"
    store = SQLiteStore(db)
    inbox = SQLiteInbox(db)
    runs = [new_run("hook", TriggerKind.WEBHOOK, f"k{i}", {"i": i}) for i in range(5)]
    inbox.record([(r, None) for r in runs[:2]])
    InboxMover(store).move()  # two moved into runs by a runner, then it stopped
    inbox.record([(r, None) for r in runs[2:]])
    inbox.close()
    store.close()
    res = cli("status")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == (
        "3 webhook event(s) recorded and answered, not yet moved into runs (the runner moves "
        "them as it runs; none is lost while it is stopped)"
    )
    assert json.loads(cli("status", "--format", "json").stdout)["inbox"] == 3
