"""``automations run --db postgresql://...``: webhooks recorded in PostgreSQL, run once, and a
second runner on the same database refused (one runner per database until runs have leases)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from automations.records import RunFilter, RunStatus
from automations.stores.postgres import PostgresStore
from tests.acceptance.conftest import Fakes, StartRunner, dumps, standard_headers, write_recipe
from tests.acceptance.runner_process import WAIT_S, free_port, wait_until
from tests.postgres import fresh_schema

pytestmark = pytest.mark.acceptance

LOOPS_HOOK = """
name: loops-hook
trigger:
  webhook:
    path: /hooks/loops
    verify: {scheme: standard-webhooks, secret: "${HOOK_SECRET}"}
actions:
  - loops.send_event: {email: /email, eventName: hooked}
"""


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def test_a_runner_on_postgres_records_and_runs_each_webhook_once(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes, pg: str
) -> None:
    write_recipe(recipes_dir, "loops-hook.yaml", LOOPS_HOOK)
    runner = start_runner(recipes_dir, "--db", pg)
    ids = []
    for n in range(5):
        body = dumps({"email": f"user{n}@example.com"})
        answer = runner.post("/hooks/loops", body, standard_headers(body, f"msg_{n}"))
        assert answer.status_code == 202
        ids.append(answer.json()["run_id"])
    body = dumps({"email": "user0@example.com"})
    again = runner.post("/hooks/loops", body, standard_headers(body, "msg_0"))
    assert (again.status_code, again.json()) == (200, {"run_id": ids[0], "status": "duplicate"})

    store = PostgresStore(pg)
    try:
        wait_until(lambda: store.count(RunStatus.SUCCEEDED) == 5, "5 runs succeeded in PostgreSQL")
        runs = store.list_runs(RunFilter())
        assert sorted(r.id for r in runs) == sorted(ids)
    finally:
        store.close()
    sent = Counter(e["body"]["email"] for e in fakes.loops_events())
    assert sent == Counter({f"user{n}@example.com": 1 for n in range(5)})
    assert not (recipes_dir.parent / "automations.db").exists()

    # a second runner on the same database stops at once, saying why
    second = subprocess.run(
        [sys.executable, "-m", "automations", "run", str(recipes_dir), "--db", pg,
         "--port", str(free_port())],
        env=runner.env, capture_output=True, text=True, timeout=WAIT_S,
    )  # fmt: skip
    assert second.returncode == 1, second.stderr
    assert "another runner is using run store postgresql://" in second.stderr
    assert "Traceback" not in second.stderr
