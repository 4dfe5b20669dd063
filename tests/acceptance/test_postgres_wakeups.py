"""``automations run`` on PostgreSQL listens for wake-ups on a connection of its own, unless
``--poll-only`` (or ``AUTOMATIONS_POLL_ONLY``) says polling alone (PgBouncer in transaction
mode); and it leads the sources when it is the only node."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.acceptance.conftest import StartRunner, write_recipe
from tests.acceptance.runner_process import wait_until
from tests.postgres import fresh_schema

pytestmark = pytest.mark.acceptance

TICK = """
name: tick
trigger:
  schedule: {every: 1h}
actions:
  - http.request: {method: POST, url: "https://x.example/tick"}
"""


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def listening(url: str, app: str) -> int:
    """How many connections of ``app`` wait in ``LISTEN`` (their last statement)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND query = 'LISTEN automations_runs'",
            (app,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_runner_listens_for_wake_ups_and_leads_alone(
    recipes_dir: Path, start_runner: StartRunner, pg: str
) -> None:
    write_recipe(recipes_dir, "tick.yaml", TICK)
    app = f"coord-{uuid.uuid4().hex[:8]}"
    runner = start_runner(recipes_dir, "--db", f"{pg}&application_name={app}")
    wait_until(lambda: listening(pg, app) == 1, "the runner to LISTEN")
    lead = runner.health()["lead"]
    assert (lead["leading"], lead["term"]) == (True, 1)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_poll_only_never_listens(
    recipes_dir: Path, start_runner: StartRunner, pg: str, how: str
) -> None:
    write_recipe(recipes_dir, "tick.yaml", TICK)
    app = f"coord-{uuid.uuid4().hex[:8]}"
    url = f"{pg}&application_name={app}"
    if how == "flag":
        runner = start_runner(recipes_dir, "--db", url, "--poll-only")
    else:
        runner = start_runner(recipes_dir, "--db", url, env={"AUTOMATIONS_POLL_ONLY": "1"})
    time.sleep(1.0)  # a listener would have connected by now (it does before the first poll)
    assert listening(pg, app) == 0
    assert runner.health()["lead"]["leading"] is True
