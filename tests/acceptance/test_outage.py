"""The runner rides out a provider outage (issue 9: an unreachable vendor failed every run after
12 s). Real time, so a short outage; the 10-minute case runs on virtual time in
tests/connections/test_outage.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, StartRunner, dumps, write_recipe
from tests.acceptance.runner_process import wait_until

pytestmark = pytest.mark.acceptance

RECIPE = """
name: signup-event
trigger:
  webhook: {path: /hooks/signup, verify: {scheme: none}}
actions:
  - id: welcome
    loops.send_event: {email: /email, eventName: signup}
"""


def test_an_event_sent_during_an_outage_is_delivered_once_it_ends(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    write_recipe(recipes_dir, "signup.yaml", RECIPE)
    runner = start_runner(recipes_dir)
    fakes.loops.outage(time.time() + 4.0, 503)  # Loops answers 503 for the next 4 s
    answer = runner.post("/hooks/signup", dumps({"email": "ada@example.com"}), {})
    assert answer.status_code == 202

    def finished() -> dict[str, object] | None:
        runs = runner.runs()
        return runs[0] if runs and runs[0]["status"] not in ("pending", "running") else None

    run = wait_until(finished, "the run to finish")
    assert run["status"] == "succeeded", run
    [step] = run["steps"]  # type: ignore[misc]
    sent = fakes.loops_events()
    assert [e["outcome"] for e in sent][-1] == 200
    assert {e["outcome"] for e in sent[:-1]} == {503}
    assert step["attempts"] == len(sent) > 1
    assert len(fakes.loops.events) == 1
