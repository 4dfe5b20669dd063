"""A short ``every`` schedule in the real runner: each fire time runs once, also across a
SIGTERM and a restart on the same database."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, StartRunner, write_recipe

pytestmark = pytest.mark.acceptance

TICK = """
name: tick
trigger:
  schedule: {every: 1s, missed: run_once}
actions:
  - loops.send_event:
      email: ops@example.com
      eventName: tick
      eventProperties: {firedAt: /fired_at}
"""


def _fire_key(fired_at: str) -> str:
    """``fired_at`` (ISO, UTC here) as the run's event key (``2026-01-01T00:00:00Z``)."""
    return datetime.fromisoformat(fired_at).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_every_fire_time_runs_once_across_a_restart(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    write_recipe(recipes_dir, "tick.yaml", TICK)
    runner = start_runner(recipes_dir)
    runner.wait_runs("tick", 3)
    assert runner.stop() == 0
    before = runner.count_runs("tick")

    runner.start()
    runner.wait_runs("tick", before + 3)
    # and once more after a SIGKILL: a fire time in flight is resumed, not fired again
    runner.kill()
    before = runner.count_runs("tick", finished=False)
    runner.start()
    runner.wait_runs("tick", before + 2)
    runner.wait_idle()
    assert runner.stop() == 0

    runs = runner.runs("--recipe", "tick")
    keys = [r["event_key"] for r in runs]
    assert len(keys) == len(set(keys))
    assert {r["status"] for r in runs} == {"succeeded"}
    # every fire time reached Loops exactly once (a resend after the kill reuses its key)
    events = fakes.loops_events()
    accepted = Counter(
        _fire_key(e["body"]["eventProperties"]["firedAt"]) for e in events if e["outcome"] == 200
    )
    assert accepted == Counter(dict.fromkeys(keys, 1))
    by_fire: dict[str, set[str]] = {}
    for e in events:
        by_fire.setdefault(_fire_key(e["body"]["eventProperties"]["firedAt"]), set()).add(e["key"])
    assert all(len(idempotency_keys) == 1 for idempotency_keys in by_fire.values())
    assert {e["outcome"] for e in events} <= {200, 409}
    # fire times are whole seconds, one per interval
    assert all(k.endswith("Z") and len(k) == 20 for k in keys)
    ordered = sorted(datetime.fromisoformat(k.replace("Z", "+00:00")) for k in keys)
    assert all((b - a).total_seconds() >= 1 for a, b in itertools.pairwise(ordered))
