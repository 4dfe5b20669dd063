"""The intake process (``automations/intake``): it records webhooks while the runner cannot, is
started again when it dies, and dies with the runner; no event answered ``202`` is lost or run
twice on any of these paths (exact counts at the fake)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import (
    LOOPS_HOOK,
    Fakes,
    StartRunner,
    dumps,
    standard_headers,
    write_recipe,
)
from tests.acceptance.runner_process import RunnerProcess, wait_until

pytestmark = pytest.mark.acceptance


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _intake_pid(runner: RunnerProcess) -> int:
    assert runner.proc is not None
    found = [
        p
        for p in _children(runner.proc.pid)
        if b"automations.intake" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    assert len(found) == 1, found
    return found[0]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _deliver(client: httpx.Client, runner: RunnerProcess, n: int) -> str:
    """Deliver event ``n`` as a provider does: again until it is answered 2xx (bounded)."""
    body = dumps({"email": f"e{n}@example.com"})
    headers = standard_headers(body, f"evt-{n}")
    deadline = time.monotonic() + 30
    while True:
        try:
            answer = client.post(runner.url("/hooks/loops"), content=body, headers=headers)
            if answer.status_code in (200, 202):
                return str(answer.json()["run_id"])
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"event {n} was never taken"
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_killed_intake_process_is_started_again_and_loses_nothing(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    write_recipe(recipes_dir, "loops-hook.yaml", LOOPS_HOOK)
    runner = start_runner(recipes_dir)
    first = _intake_pid(runner)
    events = 60
    answered: dict[int, str] = {}
    with httpx.Client(timeout=10.0) as client:
        for n in range(events):
            if n == 20:
                os.kill(first, signal.SIGKILL)
            answered[n] = _deliver(client, runner, n)
    runner.wait_log("the webhook intake process exited")
    wait_until(lambda: runner.summary()["status"] == "ok", "/healthz to answer again")
    assert _intake_pid(runner) != first

    runner.wait_runs("loops-hook", events)
    emails = Counter(e["body"]["email"] for e in fakes.loops_events())
    assert emails == Counter({f"e{n}@example.com": 1 for n in range(events)})
    stored = {str(r[0]) for r in runner.query("SELECT id FROM runs")}
    assert stored == set(answered.values())


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_events_recorded_while_the_runner_is_frozen_then_killed_run_once_after_restart(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    """The runner frozen (SIGSTOP): the intake process still records; the runner then killed
    (SIGKILL) takes its intake process with it, leaving the events in the inbox file only;
    the next start moves them and runs each once."""
    write_recipe(recipes_dir, "loops-hook.yaml", LOOPS_HOOK)
    runner = start_runner(recipes_dir)
    assert runner.proc is not None
    intake = _intake_pid(runner)
    os.kill(runner.proc.pid, signal.SIGSTOP)
    events = 25
    with httpx.Client(timeout=10.0) as client:
        answered = {n: _deliver(client, runner, n) for n in range(events)}
    runner.kill()  # SIGKILL (a stopped process dies of it too)
    wait_until(lambda: not _alive(intake), "the intake process to die with the runner")
    assert runner.count_runs("loops-hook") == 0  # only in the inbox
    assert fakes.loops.count == 0

    runner.start()  # same port: free again
    runner.wait_runs("loops-hook", events)
    emails = Counter(e["body"]["email"] for e in fakes.loops_events())
    assert emails == Counter({f"e{n}@example.com": 1 for n in range(events)})
    stored = {str(r[0]) for r in runner.query("SELECT id FROM runs")}
    assert stored == set(answered.values())
