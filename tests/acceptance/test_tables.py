"""Table triggers in the real runner: rows appended while it runs, half-written lines, updated
rows, rows without a key. Exact counts of what the fakes received."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, StartRunner, append, write_recipe
from tests.acceptance.runner_process import RunnerProcess

pytestmark = pytest.mark.acceptance

HEADER = "Email,First Name,Plan\n"

SIGNUPS = """
name: signups
trigger:
  table: {path: data/leads.csv, key: Email, existing_rows: skip}
actions:
  - loops.send_event:
      email: /Email
      eventName: signedUp
      eventProperties: {firstName: /First Name, plan: /Plan}
"""

UPDATES = """
name: plan-changes
trigger:
  table: {path: data/plans.csv, key: Email, run_on: [added, updated], existing_rows: skip}
actions:
  - loops.update_contact: {email: /Email, firstName: /First Name, plan: /Plan}
"""


def _events(fakes: Fakes) -> Counter[tuple[str, str, str]]:
    return Counter(
        (
            e["body"]["email"],
            e["body"]["eventProperties"]["firstName"],
            e["body"]["eventProperties"]["plan"],
        )
        for e in fakes.loops_events()
        if e["outcome"] == 200
    )


def _updates(fakes: Fakes) -> Counter[tuple[str, str]]:
    return Counter(
        (r.body["email"], r.body["plan"])
        for r in list(fakes.loops.received)
        if r.method == "PUT" and r.outcome == 200
    )


def _barrier(runner: RunnerProcess, recipe: str, runs: int) -> None:
    """Wait until ``recipe`` has ``runs`` runs and nothing is left to execute: every event the
    runner took from the file before the one that made the last run is then finished too (one
    task per table records runs in file order)."""
    runner.wait_runs(recipe, runs)
    runner.wait_idle()


def test_appended_rows_run_once_each(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    leads = recipes_dir / "data" / "leads.csv"
    leads.write_text(HEADER + "old1@example.com,Old,free\nold2@example.com,Older,free\n")
    write_recipe(recipes_dir, "signups.yaml", SIGNUPS)
    runner = start_runner(recipes_dir)

    # rows appended one write at a time, and two in one write
    append(leads, "ada@example.com,Ada,pro\n")
    _barrier(runner, "signups", 1)
    append(leads, "grace@example.com,Grace,team\nalan@example.com,Alan,free\n")
    _barrier(runner, "signups", 3)

    # a half-written last line is not a row; its newline makes it one (complete content)
    append(leads, "katherine@example.com,Kath")
    time.sleep(0.3)  # let the runner see the partial line (well under its 2 s settle time)
    assert runner.count_runs("signups") == 3
    append(leads, "erine,pro\n")
    _barrier(runner, "signups", 4)

    # a row without its key is reported and skipped; the rows after it still run
    append(leads, ",Nobody,free\n")
    runner.wait_log("leads.csv line 8: key column 'Email' is empty")
    append(leads, "dorothy@example.com,Dorothy,pro\n")
    _barrier(runner, "signups", 5)

    assert _events(fakes) == Counter(
        {
            ("ada@example.com", "Ada", "pro"): 1,
            ("grace@example.com", "Grace", "team"): 1,
            ("alan@example.com", "Alan", "free"): 1,
            ("katherine@example.com", "Katherine", "pro"): 1,
            ("dorothy@example.com", "Dorothy", "pro"): 1,
        }
    )
    assert len(fakes.loops_events()) == 5  # nothing refused, nothing retried
    runs = runner.runs()
    assert sorted((r["event_key"], r["status"], r["trigger"]) for r in runs) == [
        ("ada@example.com", "succeeded", "table"),
        ("alan@example.com", "succeeded", "table"),
        ("dorothy@example.com", "succeeded", "table"),
        ("grace@example.com", "succeeded", "table"),
        ("katherine@example.com", "succeeded", "table"),
    ]
    assert runner.running  # the keyless row did not stop anything


def test_updated_rows_run_on_every_change_even_back(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    plans = recipes_dir / "data" / "plans.csv"
    plans.write_text(HEADER + "ada@example.com,Ada,free\ngrace@example.com,Grace,free\n")
    write_recipe(recipes_dir, "plans.yaml", UPDATES)
    runner = start_runner(recipes_dir)

    # an exporter rewrites the whole file: Ada's row changed
    plans.write_text(HEADER + "ada@example.com,Ada,pro\ngrace@example.com,Grace,free\n")
    _barrier(runner, "plan-changes", 1)
    # the same content written again is no change; a new row is an "added" run
    plans.write_text(HEADER + "ada@example.com,Ada,pro\ngrace@example.com,Grace,free\n")
    append(plans, "alan@example.com,Alan,free\n")
    _barrier(runner, "plan-changes", 2)
    # a newer version of Ada's row appended below the old one: the last version wins
    append(plans, "ada@example.com,Ada,team\n")
    _barrier(runner, "plan-changes", 3)
    # back to an earlier content (pro -> team -> pro) is a change: it runs again
    plans.write_text(
        HEADER + "ada@example.com,Ada,pro\ngrace@example.com,Grace,free\n"
        "alan@example.com,Alan,free\n"
    )
    append(plans, "grace@example.com,Grace,pro\n")
    _barrier(runner, "plan-changes", 5)

    assert _updates(fakes) == Counter(
        {
            ("ada@example.com", "pro"): 2,
            ("alan@example.com", "free"): 1,
            ("ada@example.com", "team"): 1,
            ("grace@example.com", "pro"): 1,
        }
    )
    runs = runner.runs()
    # an update's event key is "<row key>@<16 hex digits>"; an added row's is the row key
    assert sorted(
        r["event_key"][:-17] if r["event_key"].count("@") == 2 else r["event_key"] for r in runs
    ) == [
        "ada@example.com",
        "ada@example.com",
        "ada@example.com",
        "alan@example.com",
        "grace@example.com",
    ]
    assert {r["status"] for r in runs} == {"succeeded"}
