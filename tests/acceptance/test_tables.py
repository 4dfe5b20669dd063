"""Table triggers in the real runner: rows appended while it runs, half-written lines, updated
rows, rows without a key. Exact counts of what the fakes received."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.acceptance.conftest import (
    LOOPS_HOOK,
    Fakes,
    StartRunner,
    append,
    dumps,
    standard_headers,
    write_recipe,
)
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


BIG = """
name: big
trigger:
  table: {path: data/big.csv, key: Email, existing_rows: skip}
actions:
  - loops.send_event: {email: /Email, eventName: big}
"""


def test_a_large_first_look_and_a_20k_append_never_stall_the_runner(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    """A 100,000-row table's first look and then 20,000 rows appended at once are read on a
    thread in batches: /healthz and webhooks answer throughout (a bounded probe that fails
    only on a stall of seconds), the runner serves before the first look ends, and the append
    is held whole by the flood brake (exact counts, nothing sent for it)."""
    big = recipes_dir / "data" / "big.csv"
    big.write_text(HEADER + "".join(f"old{i}@example.com,Old {i},free\n" for i in range(100_000)))
    write_recipe(recipes_dir, "big.yaml", BIG)
    write_recipe(recipes_dir, "loops-hook.yaml", LOOPS_HOOK)
    runner = start_runner(recipes_dir)
    slowest = 0.0
    posted = 0

    probes = 0

    def probe() -> None:
        nonlocal slowest, posted, probes
        started = time.monotonic()
        assert runner.summary()["status"] == "ok"
        if probes % 5 == 0:  # a webhook too (its Loops event goes out at 10/s)
            body = dumps({"email": f"hook{posted}@example.com"})
            answer = runner.post("/hooks/loops", body, standard_headers(body, f"m{posted}"))
            assert answer.status_code == 202
            posted += 1
        probes += 1
        slowest = max(slowest, time.monotonic() - started)

    # the first look goes on after the runner serves; rows appended before it ends would be
    # part of the table's existing rows (skipped), so the append waits for it
    done = "recipe big: first look at big.csv done"
    deadline = time.monotonic() + 120
    while done not in runner.log and time.monotonic() < deadline:  # bounded
        probe()
        time.sleep(0.05)
    assert runner.log.count(done) == 1
    append(big, "".join(f"new{i}@example.com,New {i},pro\n" for i in range(20_000)))
    deadline = time.monotonic() + 120
    while runner.count_runs("big") < 20_000 and time.monotonic() < deadline:  # bounded
        probe()
        time.sleep(0.05)
    for _ in range(5):
        probe()
    runner.wait_runs("loops-hook", posted)
    runner.wait_idle()
    assert slowest < 1.0, slowest  # bounded: only a stall of seconds fails
    held = runner.query("SELECT count(*) FROM runs WHERE recipe = 'big' AND status = 'held'")
    assert held == [(20_000,)]
    assert runner.count_runs("big") == 20_000
    assert runner.count_runs("loops-hook") == posted
    assert sorted(e["body"]["email"] for e in fakes.loops_events()) == sorted(
        f"hook{i}@example.com" for i in range(posted)
    )
    assert runner.log.count("found 20000 rows to run, more than its flood_limit of 100") == 1
