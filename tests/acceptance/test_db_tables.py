"""Database tables in the real runner (SQLite file and PostgreSQL): rows inserted while it runs
and while it is down run once, an update of an unread column runs nothing, results are written
back into the row and never run it again, a missing write-back column fails the run with the
reason in the audit, and the database URL (a secret) appears nowhere the runner writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, StartRunner, write_recipe
from tests.acceptance.runner_process import RunnerProcess, wait_until
from tests.triggers.databases import KINDS, TestDatabase, open_database

pytestmark = pytest.mark.acceptance

LEADS = (
    "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, note TEXT, "
    "updated_at TEXT NOT NULL, loops_ok TEXT, automation_error TEXT)"
)

RECIPE = """
name: db-leads
trigger:
  table:
    database: {database}
    table: leads
    key: id
    run_on: [added, updated]
    changed_by: updated_at
    poll: 0.2
actions:
  - id: event
    loops.send_event: {{email: /email, eventName: leadAdded, eventProperties: {{name: /name}}}}
write_back:
  loops_ok: "{{/@event.success}}"
  automation_error: /@error
"""


@pytest.fixture(params=KINDS)
def db(request: pytest.FixtureRequest, recipes_dir: Path) -> Iterator[TestDatabase]:
    with open_database(request.param, recipes_dir / "data") as database:
        database.sql(LEADS)
        yield database


def _database(db: TestDatabase) -> tuple[str, dict[str, str]]:
    """What the recipe says (a path relative to it, or ``${CRM_DB}``) and the runner's env."""
    if db.kind == "sqlite":
        return "data/crm.db", {}
    return "${CRM_DB}", {"CRM_DB": db.url}


def _insert(db: TestDatabase, i: int, stamp: str) -> None:
    db.sql(
        "INSERT INTO leads (id, email, name, updated_at) VALUES (?, ?, ?, ?)",
        (i, f"lead{i}@example.com", f"Lead{i}", stamp),
    )


def _sent(fakes: Fakes) -> list[str]:
    return sorted(e["body"]["email"] for e in fakes.loops_events() if e["outcome"] == 200)


def _settle(runner: RunnerProcess, polls: int = 5) -> None:
    time.sleep(polls * 0.2 + 0.3)  # several looks at the table
    runner.wait_idle()


def test_rows_run_once_and_results_are_written_back(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes, db: TestDatabase
) -> None:
    database, env = _database(db)
    write_recipe(recipes_dir, "db-leads.yaml", RECIPE.format(database=database))
    _insert(db, 1, "2024-05-01T10:00:00")  # there before the recipe: skipped
    runner = start_runner(recipes_dir, env=env)
    _insert(db, 2, "2024-05-01T10:00:01")
    _insert(db, 3, "2024-05-01T10:00:01")  # the same changed_by value
    runner.wait_runs("db-leads", 2)
    wait_until(
        lambda: db.sql("SELECT count(*) FROM leads WHERE loops_ok IS NOT NULL")[0][0] == 2,
        "both rows written back",
    )
    _settle(runner)
    # the write-back changed the rows; they did not run again
    assert runner.count_runs("db-leads") == 2
    assert db.sql("SELECT id, loops_ok, automation_error FROM leads ORDER BY id") == [
        (1, None, None),
        (2, "true", None),
        (3, "true", None),
    ]
    db.sql("UPDATE leads SET note = 'called', updated_at = '2024-05-01T10:00:02' WHERE id = 2")
    _settle(runner)
    assert runner.count_runs("db-leads") == 2  # note is not read
    db.sql("UPDATE leads SET name = 'Renamed', updated_at = '2024-05-01T10:00:03' WHERE id = 2")
    runner.wait_runs("db-leads", 3)
    assert runner.stop() == 0
    _insert(db, 4, "2024-05-01T10:00:04")  # while the runner is down
    runner.start()
    runner.wait_runs("db-leads", 4)
    _settle(runner)
    runs = runner.runs("--recipe", "db-leads")
    assert sorted(r["event_key"].partition("@")[0] for r in runs) == ["2", "2", "3", "4"]
    assert {r["status"] for r in runs} == {"succeeded"}
    assert _sent(fakes) == [
        "lead2@example.com",
        "lead2@example.com",
        "lead3@example.com",
        "lead4@example.com",
    ]
    assert db.sql("SELECT id, loops_ok FROM leads ORDER BY id") == [
        (1, None),
        (2, "true"),
        (3, "true"),
        (4, "true"),
    ]
    if db.kind == "postgres":  # the URL was a secret: not in the audit, the log, show or render
        _assert_url_nowhere(runner, db.url, runs[0]["id"], recipes_dir)


def _assert_url_nowhere(runner: RunnerProcess, url: str, run_id: str, recipes_dir: Path) -> None:
    host = url.partition("host=")[2].partition("&")[0]
    assert host and url not in runner.log and host not in runner.log
    dump = "\n".join(str(row) for row in runner.query("SELECT * FROM runs"))
    dump += "\n".join(str(row) for row in runner.query("SELECT * FROM steps"))
    dump += "\n".join(str(row) for row in runner.query("SELECT * FROM state"))
    assert url not in dump and host not in dump
    shown = json.dumps(runner.show(run_id))
    assert url not in shown and host not in shown
    assert "${CRM_DB}" in "\n".join(str(r) for r in runner.query("SELECT scope FROM state"))
    recipe, row = str(recipes_dir / "db-leads.yaml"), '{"id": 9, "email": "a@x.io"}'
    rendered = subprocess.run(
        [sys.executable, "-m", "automations", "render", recipe, "--row", row],
        env=runner.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert url not in rendered.stdout + rendered.stderr


def test_a_missing_write_back_column_fails_the_run_with_the_reason(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    with open_database("sqlite", recipes_dir / "data") as db:
        db.sql(LEADS)
        recipe = RECIPE.format(database="data/crm.db").replace(
            "automation_error: /@error", "automation_status: /@error"
        )
        write_recipe(recipes_dir, "db-leads.yaml", recipe)
        runner = start_runner(recipes_dir)
        _insert(db, 1, "2024-05-01T10:00:00")
        runner.wait_runs("db-leads", 1)
        (run,) = runner.runs("--recipe", "db-leads")
        assert run["status"] == "failed"
        assert run["error"].startswith("write_back: cannot write back into leads in database ")
        assert "automation_status" in run["error"]
        assert _sent(fakes) == ["lead1@example.com"]  # the step itself went out, once
        # the column is added: replaying the run writes back without sending again
        db.sql("ALTER TABLE leads ADD COLUMN automation_status TEXT")
        runner.cli("replay", run["id"])
        assert db.sql("SELECT loops_ok, automation_status FROM leads") == [("true", None)]
        assert _sent(fakes) == ["lead1@example.com"]
