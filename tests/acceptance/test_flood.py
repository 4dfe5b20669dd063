"""Auto-update in the real runner against the Loops fake: a mass edit of a read column is held
until a person approves (exactly one request per row) or discards it (none, ever); a renamed
header runs nothing; a renamed read column stops the recipe until it is back. Exact counts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, StartRunner, append, write_recipe
from tests.acceptance.runner_process import RunnerProcess, wait_until

pytestmark = pytest.mark.acceptance

ROWS = 300
HEADER = "Email,First Name,Plan,Notes\n"

PLANS = """
name: plan-changes
trigger:
  table: {path: data/plans.csv, key: Email, run_on: [added, updated]}
actions:
  - loops.update_contact: {email: /Email, firstName: /First Name, plan: /Plan}
"""
#: The provider's 10/s would make 300 sends take 30 s: the count, not the pace, is under test
#: here, so the fake and the runner both allow 1000/s (``fast``).
FAST = {"LOOPS_RATE_LIMIT": "1000"}


@pytest.fixture
def fast(fakes: Fakes) -> Fakes:
    fakes.loops.set_rate_limit(1000)
    return fakes


def _table(path: Path, *, plan: str = "free", header: str = HEADER, notes: str = "n") -> None:
    rows = "".join(f"u{i}@example.com,User {i},{plan},{notes}\n" for i in range(ROWS))
    path.write_text(header + rows)


def _puts(fakes: Fakes) -> list[str]:
    return [r.body["email"] for r in list(fakes.loops.received) if r.method == "PUT"]


def _count(runner: RunnerProcess, status: str) -> int:
    rows = runner.query("SELECT count(*) FROM runs WHERE status = ?", (status,))
    return int(rows[0][0]) if rows else 0


def _cli(runner: RunnerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automations", *args, "--db", str(runner.db)],
        env=runner.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _sentinel(
    runner: RunnerProcess, plans: Path, fakes: Fakes, n: int, row: str = "{email},S,free,n"
) -> None:
    """Append a fresh row and wait until it was sent: every change written before it has been
    taken from the file by then (one task reads the table in order)."""
    append(plans, row.format(email=f"sentinel{n}@example.com") + "\n")
    wait_until(lambda: f"sentinel{n}@example.com" in _puts(fakes), f"sentinel {n} to be sent")
    runner.wait_idle()


def test_a_mass_edit_is_held_until_approved_then_sent_exactly_once(
    recipes_dir: Path, start_runner: StartRunner, fast: Fakes
) -> None:
    fakes = fast
    plans = recipes_dir / "data" / "plans.csv"
    _table(plans)
    write_recipe(recipes_dir, "plans.yaml", PLANS)
    runner = start_runner(recipes_dir, env=FAST)

    # a header rename of a column the recipe does not read, on a 300-row updated table: 0 runs
    _table(plans, header=HEADER.replace("Notes", "Comments"))
    _table(plans, header="Notes,Plan,First Name,Email\n".replace("Notes", "Comments"))
    plans.write_text(
        "Plan,Email,First Name,Added\n"
        + "".join(f"free,u{i}@example.com,User {i},x\n" for i in range(ROWS))
    )
    _sentinel(runner, plans, fakes, 1, "free,{email},S,x")
    assert _puts(fakes) == ["sentinel1@example.com"]

    # a mass edit of a read column: 300 held, nothing sent
    _table(plans, plan="pro")
    wait_until(lambda: _count(runner, "held") == ROWS, f"{ROWS} held runs")
    time.sleep(1.5)  # more than the runner's look at decisions: still nothing may leave
    assert _puts(fakes) == ["sentinel1@example.com"]
    assert runner.health()["held"] == {"plan-changes": ROWS}
    assert runner.summary()["errors"] == 1
    assert runner.log.count("found 300 rows to run, more than its flood_limit of 100") == 1

    approved = _cli(runner, "approve", "--recipe", "plan-changes")
    assert (approved.returncode, approved.stdout) == (
        0,
        f"approved {ROWS} held run(s) of plan-changes: they run now\n",
    )
    wait_until(lambda: _count(runner, "succeeded") == ROWS + 1, "the approved runs")
    runner.wait_idle()
    sent = _puts(fakes)
    assert len(sent) == ROWS + 1
    assert sorted(set(sent) - {"sentinel1@example.com"}) == sorted(
        f"u{i}@example.com" for i in range(ROWS)
    )
    assert {r.body["plan"] for r in list(fakes.loops.received)[1:]} == {"pro"}
    assert runner.health()["held"] == {}
    assert runner.summary()["errors"] == 0


def test_a_discarded_flood_is_never_sent(
    recipes_dir: Path, start_runner: StartRunner, fast: Fakes
) -> None:
    fakes = fast
    plans = recipes_dir / "data" / "plans.csv"
    _table(plans)
    write_recipe(recipes_dir, "plans.yaml", PLANS)
    runner = start_runner(recipes_dir, env=FAST)
    _table(plans, plan="team")
    wait_until(lambda: _count(runner, "held") == ROWS, f"{ROWS} held runs")

    discarded = _cli(runner, "discard", "--recipe", "plan-changes")
    assert discarded.stdout == f"discarded {ROWS} held run(s) of plan-changes: nothing was sent\n"
    wait_until(lambda: runner.health()["held"] == {}, "the runner to see the decision")
    assert runner.stop() == 0
    runner.start()  # a restart resumes nothing of it either
    _sentinel(runner, plans, fakes, 1)
    assert _puts(fakes) == ["sentinel1@example.com"]
    assert _count(runner, "discarded") == ROWS
    listed = runner.runs("--status", "discarded")
    assert len(listed) == ROWS
    assert {r["error"] for r in listed} == {
        "discarded by an operator (automations discard); never sent"
    }


def test_a_renamed_read_column_stops_the_recipe_until_it_is_back(
    recipes_dir: Path, start_runner: StartRunner, fast: Fakes
) -> None:
    fakes = fast
    plans = recipes_dir / "data" / "plans.csv"
    _table(plans)
    write_recipe(recipes_dir, "plans.yaml", PLANS)
    runner = start_runner(recipes_dir, env=FAST)

    _table(plans, header=HEADER.replace("Plan", "Tier"))  # Plan is read by the recipe
    message = (
        'the header of plans.csv has no column "Plan", which the recipe reads (renamed or '
        "removed?); nothing runs for this recipe until the header has it again"
    )
    wait_until(lambda: runner.health()["tables"] == {"plan-changes": message}, "the error")
    assert runner.summary()["errors"] == 1
    append(plans, "new@example.com,New,free,n\n")  # not enqueued while the header is wrong
    time.sleep(1.0)
    assert runner.count_runs() == 0

    _table(plans)  # the header is back; the row added meanwhile is gone again: nothing to do
    append(plans, "new@example.com,New,free,n\n")
    wait_until(lambda: _puts(fakes) == ["new@example.com"], "the new row to be sent")
    runner.wait_idle()
    assert runner.health()["tables"] == {}
    assert runner.log.count(message) == 1
    assert runner.count_runs() == 1
