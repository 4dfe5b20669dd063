"""While runs wait, the runner logs its backlog every ``backlog_log_every_s``; when none wait,
nothing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from automations.connections import Connections, ConnectionSettings
from automations.records import RunStatus
from automations.runner.service import Runner, RunnerOptions
from automations.stores import SQLiteStore
from tests.stores.factories import make_run

pytestmark = pytest.mark.integration


def _run_for(directory: Path, db: Path, seconds: float) -> None:
    async def go() -> None:
        store = SQLiteStore(db)
        async with Connections(ConnectionSettings.from_env({})) as conns:
            runner = Runner(directory, store, conns, {}, RunnerOptions(backlog_log_every_s=0.05))
            await runner.start()
            try:
                await asyncio.sleep(seconds)
            finally:
                await runner.stop()
                store.close()

    asyncio.run(go())


def test_a_waiting_backlog_is_logged_with_its_estimate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    for i in range(2):  # runs of a recipe that is not loaded: they wait
        store.enqueue(make_run(f"r{i}", recipe="gone", status=RunStatus.PENDING))
    store.close()
    (tmp_path / "recipes").mkdir()
    with caplog.at_level(logging.INFO, logger="automations"):
        _run_for(tmp_path / "recipes", tmp_path / "runs.db", 0.4)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backlog:")]
    assert len(lines) >= 2
    assert set(lines) == {"backlog: gone 2 queued, 0 sent in the last minute, stalled"}


def test_no_backlog_no_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "recipes").mkdir()
    with caplog.at_level(logging.INFO, logger="automations"):
        _run_for(tmp_path / "recipes", tmp_path / "runs.db", 0.2)
    assert not [r for r in caplog.records if r.getMessage().startswith("backlog:")]
