"""render, test, exec, runs, show and replay through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import REPO

pytestmark = pytest.mark.acceptance
Cli = Callable[..., subprocess.CompletedProcess[str]]

ROW = json.dumps(
    {
        "Email": "ada@example.com",
        "First Name": "Ada",
        "Last Name": "L",
        "Company": "AE",
        "Phone": "(555) 555-0100",
    }
)
LEAD = str(REPO / "recipes" / "new-lead-to-quo.yaml")


def test_render_masks_secrets(cli: Cli) -> None:
    res = cli(
        "render",
        LEAD,
        "--row",
        ROW,
        env={"QUO_FROM": "+15555550199", "QUO_API_KEY": "sk-quo-secret-123"},
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["condition"]["passed"] is True
    sms = out["steps"][1]["request"]
    assert sms["url"] == "https://api.openphone.com/v1/messages"
    assert sms["body"]["to"] == ["+15555550100"]
    assert sms["body"]["from"] == "${QUO_FROM}"
    assert sms["headers"]["Authorization"] == "***"
    assert "+15555550199" not in res.stdout and "sk-quo-secret-123" not in res.stdout


def test_render_bad_row_is_a_usage_error(cli: Cli) -> None:
    res = cli("render", LEAD, "--row", "{nope")
    assert res.returncode == 2
    assert "the row is not JSON (Expecting property name" in res.stderr
    assert "Traceback" not in res.stderr


def test_recipe_tests_pass_and_fail(cli: Cli, tmp_path: Path) -> None:
    assert cli("test", str(REPO / "recipes")).returncode == 0
    bad = (
        Path(LEAD)
        .read_text()
        .replace('"Hi {/First Name ?? there}', '"Hello {/First Name ?? there}')
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "leads.csv").write_text((REPO / "recipes/data/leads.csv").read_text())
    (tmp_path / "lead.yaml").write_text(bad)
    res = cli("test", "lead.yaml")
    assert res.returncode == 1
    assert "FAIL lead.yaml:" in res.stdout
    assert "requests[1].body.content: expected" in res.stdout
    assert res.stdout.splitlines()[-1] == "1 passed, 1 failed"


def test_exec_dry_run_then_runs_show(cli: Cli, tmp_path: Path) -> None:
    res = cli("exec", LEAD, "--row", ROW, "--dry-run", "--db", "a.db")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "succeeded (dry run)" in res.stdout
    runs = json.loads(cli("runs", "--db", "a.db", "--format", "json").stdout)
    assert len(runs) == 1
    run = runs[0]
    assert {
        "id",
        "recipe",
        "status",
        "trigger",
        "event_key",
        "created_at",
        "finished_at",
        "steps",
    } <= set(run)
    assert [s["status"] for s in run["steps"]] == ["dry_run", "dry_run"]
    assert {"action", "status", "http_status", "attempts", "error"} <= set(run["steps"][0])
    shown = json.loads(cli("show", run["id"][:8], "--db", "a.db", "--format", "json").stdout)
    assert shown["steps"][1]["request"]["body"]["content"].startswith("Hi Ada")
    assert (
        cli("runs", "--db", "a.db", "--status", "failed", "--format", "json").stdout.strip() == "[]"
    )


def test_exec_without_keys_fails_naming_the_variable(cli: Cli) -> None:
    res = cli("exec", LEAD, "--row", ROW, "--db", "b.db", env={"QUO_FROM": "+15555550199"})
    assert res.returncode == 1
    assert "QUO_API_KEY" in res.stdout
    assert "Traceback" not in res.stderr


def test_show_unknown_run_and_missing_db(cli: Cli) -> None:
    cli("exec", LEAD, "--row", ROW, "--dry-run", "--db", "c.db")
    res = cli("show", "zzzz", "--db", "c.db")
    assert res.returncode == 1
    assert "no run" in res.stderr
    assert cli("runs", "--db", "missing.db").returncode == 2


def test_replay_refuses_a_succeeded_run(cli: Cli) -> None:
    cli("exec", LEAD, "--row", ROW, "--dry-run", "--db", "d.db")
    run_id = json.loads(cli("runs", "--db", "d.db", "--format", "json").stdout)[0]["id"]
    res = cli("replay", run_id, "--db", "d.db")
    assert res.returncode == 1
    assert (
        res.stderr == f"error: run {run_id} succeeded: nothing to replay (a failed run is "
        "replayed, an unknown one after `automations resolve`)\n"
    )


def test_replay_completes_a_failed_run(cli: Cli) -> None:
    failed = cli("exec", LEAD, "--row", ROW, "--db", "e.db", env={"QUO_FROM": "+15555550199"})
    assert failed.returncode == 1
    run_id = json.loads(cli("runs", "--db", "e.db", "--format", "json").stdout)[0]["id"]
    res = cli("replay", run_id, "--db", "e.db", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    runs = json.loads(cli("runs", "--db", "e.db", "--format", "json").stdout)
    assert len(runs) == 2
    assert runs[0]["status"] == "succeeded" and runs[0]["replay_of"] == run_id


def test_render_refuses_a_row_json_cannot_carry(cli: Cli) -> None:
    res = cli("render", LEAD, "--row", '{"Email": "a@example.com", "Phone": NaN}')
    assert res.returncode == 2
    assert "NaN is not JSON: send a number, a string or null" in res.stderr
    assert "Traceback" not in res.stderr


def test_render_refuses_a_row_that_is_not_utf8(cli: Cli) -> None:
    row = os.fsdecode(b'{"Email": "a\xff@example.com"}')  # the bytes a Latin-1 terminal sends
    res = cli("render", LEAD, "--row", row)
    assert res.returncode == 2
    assert "the row is not UTF-8 (character 12); pass a JSON object, or @file.json" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("value", ["0", "soon", "86400"])
def test_run_refuses_a_leader_ttl_out_of_range(cli: Cli, tmp_path: Path, value: str) -> None:
    (tmp_path / "recipes").mkdir()
    res = cli("run", "recipes", "--db", "r.db", env={"AUTOMATIONS_LEADER_TTL_S": value})
    assert res.returncode == 1
    assert res.stderr == (
        f"error: AUTOMATIONS_LEADER_TTL_S must be seconds from 1 to 3600, not {value!r}\n"
    )
    assert not (tmp_path / "r.db").exists()  # refused before anything was opened
