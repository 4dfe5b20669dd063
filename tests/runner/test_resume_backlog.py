"""A runner resuming a large backlog (50,000 runs left unfinished, some of them cut off
``running``) keeps its own event loop answering: a probe on that loop (``LoopLag``), failing only
on a stall of seconds (no finer timing is asserted), while the backlog is given back, counted,
claimed in pages and executed. The backlog is never held in memory (one window per recipe), and
after a stop every run is either finished once or waiting, none left ``running``."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from automations.connections import Connections, ConnectionSettings
from automations.records import RunStatus
from automations.runner.dispatch import WINDOW
from automations.runner.looplag import LoopLag
from automations.runner.service import Runner, RunnerOptions
from automations.stores import SQLiteStore

pytestmark = pytest.mark.integration

BACKLOG = 50_000
#: Runs executed before the probe's verdict: the resume is well under way by then.
EXECUTED = 500
#: What counts as a stall of the runner's loop.
STALL_S = 2.0

RECIPE = """
name: hook
trigger:
  webhook: {path: /hooks/x, verify: {scheme: none}}
actions:
  - http.request: {method: POST, url: "http://127.0.0.1:9/hook", json: {id: /id}}
"""
#: Every hundredth run was cut off ``running`` by the last stop (the rest wait ``pending``).
_FILL = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
INSERT INTO runs (id, recipe, trigger, event_key, event, created_at, status, dry_run,
                  lease_owner, lease_token, lease_expires_at)
SELECT printf('%032x', i), 'hook', 'webhook', 'evt_' || i, '{"id":' || i || '}',
       :start + i * 0.001, CASE WHEN i % 100 = 0 THEN 'running' ELSE 'pending' END, 1,
       CASE WHEN i % 100 = 0 THEN 'gone-node' END, CASE WHEN i % 100 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i % 100 = 0 THEN :start + 30 END
FROM n
"""


def _backlog(path: Path) -> None:
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(_FILL, {"count": BACKLOG, "start": time.time() - 3600})
    db.commit()
    db.close()


def _finished(store: SQLiteStore) -> int:
    return store.count(RunStatus.SUCCEEDED)


def test_the_runner_loop_answers_while_a_large_backlog_resumes(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "hook.yaml").write_text(RECIPE.lstrip(), "utf-8")
    _backlog(tmp_path / "runs.db")
    most_held = 0

    async def go() -> None:
        nonlocal most_held
        lag = LoopLag()
        probe = asyncio.get_running_loop().create_task(lag.run())
        store = SQLiteStore(tmp_path / "runs.db")
        reader = SQLiteStore(tmp_path / "runs.db")
        async with Connections(ConnectionSettings.from_env({})) as conns:
            runner = Runner(tmp_path / "recipes", store, conns, {}, RunnerOptions(dry_run=True))
            await runner.start()
            try:
                deadline = time.monotonic() + 120
                while _finished(reader) < EXECUTED:
                    assert time.monotonic() < deadline, "the backlog did not execute"
                    held = [q.in_memory for q in runner.dispatcher.queues()]
                    most_held = max([most_held, *held])
                    await asyncio.sleep(0.05)
            finally:
                await runner.stop()
                probe.cancel()
                store.close()
                reader.close()
        assert lag.ticks > 0
        assert lag.max_s < STALL_S, f"the runner's loop stalled for {lag.max_s:.1f} s"

    asyncio.run(go())
    assert 0 < most_held <= WINDOW  # the backlog is read in pages, never held whole
    store = SQLiteStore(tmp_path / "runs.db")
    try:
        done = _finished(store)
        assert done >= EXECUTED
        assert store.count(RunStatus.RUNNING) == 0  # a stop gives back what it holds
        assert done + store.count(RunStatus.PENDING) == BACKLOG
        assert store.count() == BACKLOG
    finally:
        store.close()
