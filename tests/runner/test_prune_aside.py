"""Pruning runs beside execution, not in its way: while a prune of a large history is under way
(here: held until the test lets it go), a run recorded meanwhile is claimed, executed and
finished. Pruning has a store thread of its own; execution's claims and step writes do not
queue behind it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from automations.connections import Connections, ConnectionSettings
from automations.execution.executor import new_run
from automations.records import RunStatus, TriggerKind
from automations.runner.service import Runner, RunnerOptions
from automations.stores import SQLiteStore

pytestmark = pytest.mark.integration

RECIPE = """
name: hook
trigger:
  webhook: {path: /hooks/x, verify: {scheme: none}}
actions:
  - http.request: {method: POST, url: "http://127.0.0.1:9/hook", json: {id: /id}}
"""


class _SlowPrune(SQLiteStore):
    """A store whose prune takes as long as the test says (a history of millions of runs)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pruning = threading.Event()
        self.let_go = threading.Event()
        self.prunes = 0

    def prune(self, *, now: float, keep_succeeded_s: float, keep_failed_s: float) -> int:
        self.prunes += 1
        self.pruning.set()
        assert self.let_go.wait(30), "the test never let the prune go"
        return super().prune(
            now=now, keep_succeeded_s=keep_succeeded_s, keep_failed_s=keep_failed_s
        )


def test_a_run_recorded_during_a_long_prune_executes_before_it_ends(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "hook.yaml").write_text(RECIPE.lstrip(), "utf-8")
    store = _SlowPrune(tmp_path / "runs.db")
    outcome: dict[str, object] = {}

    async def go() -> None:
        async with Connections(ConnectionSettings.from_env({})) as conns:
            runner = Runner(tmp_path / "recipes", store, conns, {}, RunnerOptions(dry_run=True))
            await runner.start()
            try:
                assert await asyncio.to_thread(store.pruning.wait, 10), "no prune at start-up"
                run = new_run("hook", TriggerKind.WEBHOOK, "evt-1", {"id": 1})
                runner.accept_many([(run, None)])
                deadline = time.monotonic() + 30
                while store.get_run(run.id).status is not RunStatus.SUCCEEDED:
                    assert time.monotonic() < deadline, store.get_run(run.id).status
                    await asyncio.sleep(0.02)
                outcome["pruning_still"] = not store.let_go.is_set()
            finally:
                store.let_go.set()
                await runner.stop()

    try:
        asyncio.run(go())
        assert outcome == {"pruning_still": True}
        assert store.prunes == 1
        assert store.count(RunStatus.SUCCEEDED) == 1
    finally:
        store.close()
