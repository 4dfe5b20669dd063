"""SIGTERM: the run being sent finishes, runs still queued do not start (they wait in the
inbox for the next start), webhooks are refused meanwhile, and the exit status is 0."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import Fakes, StartRunner, dumps, standard_headers, write_recipe
from tests.acceptance.runner_process import RunnerProcess, wait_until

pytestmark = pytest.mark.acceptance

HOOK = """
name: texts
trigger:
  webhook:
    path: /hooks/texts
    verify: {scheme: standard-webhooks, secret: "${HOOK_SECRET}"}
actions:
  - quo.send_sms: {from: "${QUO_FROM}", to: [/phone], content: "Hello {/n}"}
"""


def _post(runner: RunnerProcess, n: int, *, forged: bool = False) -> int:
    body = dumps({"phone": f"(555) 555-{100 + n:04d}", "n": n})
    headers = standard_headers(body, f"msg_{n}")
    if forged:
        headers["webhook-signature"] = "v1,AAAA"
    try:
        with httpx.Client(timeout=5.0) as fresh:  # not a kept-alive connection
            return fresh.post(runner.url("/hooks/texts"), content=body, headers=headers).status_code
    except httpx.TransportError:
        return 0


def test_sigterm_finishes_the_run_in_flight_and_leaves_the_queue(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    write_recipe(recipes_dir, "texts.yaml", HOOK)
    runner = start_runner(recipes_dir, "--concurrency", "1")
    fakes.quo.gate.clear()  # Quo takes the first SMS and holds its answer
    assert [_post(runner, n) for n in range(6)] == [202] * 6
    wait_until(lambda: len(fakes.quo.sent_messages) == 1, "the first SMS to reach Quo")

    assert runner.proc is not None
    runner.proc.send_signal(signal.SIGTERM)
    # it has taken the signal once it answers 503 (or nothing) instead of 401 to a forgery
    wait_until(lambda: _post(runner, 99, forged=True) in (0, 503), "webhooks to be refused")
    fakes.quo.gate.set()
    assert runner.proc.wait(timeout=30) == 0
    assert "stopped" in runner.log
    assert [m["text"] for m in fakes.quo.sent_messages] == ["Hello 0"]
    statuses = Counter(r["status"] for r in runner.runs())
    assert statuses == Counter({"succeeded": 1, "pending": 5})

    # the next start sends the rest, each once
    runner.start()
    runner.wait_runs("texts", 6)
    assert Counter(r["status"] for r in runner.runs()) == Counter({"succeeded": 6})
    assert sorted(m["text"] for m in fakes.quo.sent_messages) == [f"Hello {n}" for n in range(6)]
