"""Exactly once under SIGKILL, for a database table: rows are inserted without pause into a SQLite
or PostgreSQL table while the runner is killed at random moments and restarted. At the end every
row has exactly one run (the write-backs, which update every row, ran none again), no SMS reached
Quo twice, and every row holds its result: the SMS id of a run that succeeded, the error of one
whose outcome the runner never learned (``unknown``)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, StartRunner, background, write_recipe
from tests.triggers.databases import KINDS, TestDatabase, open_database

pytestmark = pytest.mark.acceptance

RECIPE = """
name: db-sms
trigger:
  table:
    database: {database}
    table: leads
    key: id
    run_on: [added, updated]
    changed_by: updated_at
    poll: 0.2
actions:
  - id: sms
    quo.send_sms:
      from: ${{QUO_FROM}}
      to: [/phone]
      content: "Hi {{/name}} ({{/id}})"
write_back:
  sms_id: /@sms.data.id
  automation_error: /@error
"""

LEADS = (
    "CREATE TABLE leads (id INTEGER PRIMARY KEY, name TEXT, phone TEXT, updated_at TEXT NOT NULL, "
    "sms_id TEXT, automation_error TEXT)"
)
PACE_S = 0.25
KILLS = 3
MAX_ROWS = 40


def _insert_rows(db: TestDatabase, ids: list[int], stop: threading.Event) -> None:
    i = 1
    while not stop.is_set() and i <= MAX_ROWS:
        stamp = f"2024-05-01T10:00:{i // 3:02d}"  # three rows share each value
        db.sql(
            "INSERT INTO leads (id, name, phone, updated_at) VALUES (?, ?, ?, ?)",
            (i, f"Lead{i}", f"(555) 555-{100 + i:04d}", stamp),
        )
        ids.append(i)
        i += 1
        stop.wait(PACE_S)


@pytest.mark.parametrize("kind", KINDS)
def test_exactly_once_for_a_database_table_under_sigkill(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes, kind: str
) -> None:
    seed = int(os.environ.get("ACCEPTANCE_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    print(f"\nkill schedule seed: ACCEPTANCE_SEED={seed}")
    with open_database(kind, recipes_dir / "data") as db:
        db.sql(LEADS)
        database = "data/crm.db" if kind == "sqlite" else "${CRM_DB}"
        env = {} if kind == "sqlite" else {"CRM_DB": db.url}
        write_recipe(recipes_dir, "db-sms.yaml", RECIPE.format(database=database))
        fakes.set_latency(0.03)  # requests are in flight long enough for kills to land in them
        runner = start_runner(recipes_dir, env=env)
        ids: list[int] = []
        writer = TestDatabase(kind, db.url)  # the application: a connection of its own
        try:
            with background(lambda stop: _insert_rows(writer, ids, stop)):
                for _ in range(KILLS):
                    time.sleep(rng.uniform(0.8, 2.5))
                    runner.kill()
                    time.sleep(rng.uniform(0.0, 0.5))
                    runner.start()
                time.sleep(1.0)
        finally:
            writer.close()
        runner.wait_runs("db-sms", len(ids), timeout=60)
        runner.wait_idle(timeout=60)
        time.sleep(1.0)  # a few more looks: a write-back must not run a row again
        runner.wait_idle(timeout=60)
        assert runner.stop() == 0

        runs = runner.runs("--recipe", "db-sms")
        assert sorted(int(r["event_key"]) for r in runs) == sorted(ids)  # no "id@..." versions
        sms = Counter(m["text"] for m in fakes.quo.sent_messages)
        assert max(sms.values()) == 1, [k for k, n in sms.items() if n > 1]
        rows = {r[0]: r[1:] for r in db.sql("SELECT id, sms_id, automation_error FROM leads")}
        unknown = 0
        for run in runs:
            i = int(run["event_key"])
            sms_id, error = rows[i]
            if run["status"] == "succeeded":
                assert sms[f"Hi Lead{i} ({i})"] == 1, run
                assert sms_id is not None and error is None, (run, rows[i])
            else:
                assert run["status"] == "unknown", run
                assert error is not None and error == run["error"], (run, rows[i])
                unknown += 1
        print(f"{kind}: rows {len(ids)}, kills {KILLS}, unknown SMS runs {unknown}")
