"""The intake answers while a large backlog executes: recording a webhook (and ``/healthz``) never
waits for the runs executing. A bounded probe, failing only on a stall of seconds (no timing is
asserted finer than that), then exact counts: every run of the backlog and every probe event
sent once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from automations.execution.executor import new_run
from automations.records import TriggerKind
from automations.stores import SQLiteStore
from tests.acceptance.conftest import (
    LOOPS_HOOK,
    Fakes,
    StartRunner,
    dumps,
    standard_headers,
    write_recipe,
)
from tests.acceptance.runner_process import wait_until

pytestmark = pytest.mark.acceptance

#: Runs waiting when the runner starts: it resumes them (claims in pages) while the probe runs.
BACKLOG = 2000
PROBES = 30
#: What counts as a stall: an answer this late means the intake waited for execution.
STALL_S = 3.0


def test_the_intake_answers_while_a_large_backlog_executes(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes, tmp_path: Path
) -> None:
    fakes.loops.set_rate_limit(1000)  # the count is under test, not the provider's pace
    write_recipe(recipes_dir, "loops-hook.yaml", LOOPS_HOOK)
    store = SQLiteStore(tmp_path / "automations.db")
    store.enqueue_many(
        [
            new_run("loops-hook", TriggerKind.WEBHOOK, f"seed-{i}", {"email": f"b{i}@example.com"})
            for i in range(BACKLOG)
        ]
    )
    store.close()
    runner = start_runner(recipes_dir, env={"LOOPS_RATE_LIMIT": "1000"})
    wait_until(lambda: fakes.loops.count >= 50, "the backlog to start executing")

    slowest = 0.0
    started_at = fakes.loops.count
    with httpx.Client(timeout=30.0) as client:
        for n in range(PROBES):
            body = dumps({"email": f"probe{n}@example.com"})
            t0 = time.monotonic()
            answer = client.post(
                runner.url("/hooks/loops"), content=body, headers=standard_headers(body, f"p{n}")
            )
            health = client.get(runner.url("/healthz"))
            slowest = max(slowest, time.monotonic() - t0)
            assert (answer.status_code, health.status_code) == (202, 200)
    during = fakes.loops.count - started_at
    assert slowest < STALL_S, f"the intake stalled for {slowest:.1f} s"
    # the probe ran while the backlog executed, not after it
    assert during > 0 and fakes.loops.count < BACKLOG + PROBES, during

    runner.wait_runs("loops-hook", BACKLOG + PROBES, timeout=120)
    emails = Counter(e["body"]["email"] for e in fakes.loops_events())
    assert len(emails) == BACKLOG + PROBES
    assert set(emails.values()) == {1}
    print(f"\nslowest webhook + /healthz during a {BACKLOG}-run backlog: {slowest * 1000:.0f} ms")
