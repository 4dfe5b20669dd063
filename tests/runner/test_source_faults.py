"""A trigger source survives a store that fails for a while: it is started again, and catches up.

Before, a ``StoreError`` in a table or schedule source (PostgreSQL restarted, a connection
terminated, a locked SQLite file) ended its task for good: the table was never watched again
and the schedule never fired again until the runner restarted, while ``/healthz`` stayed 200.
With several runners the leader kept its lease, so no node watched the table at all (found by
the multi-node nemesis test: rows appended after a PostgreSQL restart never ran). A real runner
(watchfiles on a temporary folder, a real SQLite file), in process so that faults can be
injected into the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from automations.connections import Connections, ConnectionSettings
from automations.errors import StoreError
from automations.records import RunFilter
from automations.runner.service import Runner
from automations.stores import SQLiteStore

pytestmark = pytest.mark.integration

TABLE = """name: rows
trigger:
  table: {path: rows.csv, key: Email, existing_rows: skip}
actions:
  - http.request: {method: POST, url: "https://x.example/rows"}
"""

TICK = """name: tick
trigger:
  schedule: {every: 1s, missed: skip}
actions:
  - http.request: {method: POST, url: "https://x.example/tick"}
"""


class FlakyStore(SQLiteStore):
    """A SQLite store whose next ``failures`` recordings of runs raise ``StoreError`` (what a
    restarting PostgreSQL server answers)."""

    failures = 0

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._faults = threading.Lock()

    def _fault(self) -> None:
        with self._faults:
            if self.failures:
                self.failures -= 1
                raise StoreError("run store: terminating connection due to administrator command")

    def enqueue_many(self, runs: Sequence[Any]) -> Any:
        self._fault()
        return super().enqueue_many(runs)

    def enqueue_claimed(self, *args: Any, **kwargs: Any) -> Any:
        self._fault()
        return super().enqueue_claimed(*args, **kwargs)  # type: ignore[misc]


async def _until(probe: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not probe():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def started(tmp_path: Path, recipe: str) -> AsyncIterator[tuple[Runner, FlakyStore]]:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "rows.csv").write_text("Email\n")
    (recipes / "source.yaml").write_text(recipe)
    store = FlakyStore(tmp_path / "runs.db")
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with Connections(ConnectionSettings.from_env({}), transport=transport) as conns:
        runner = Runner(recipes, store, conns, {})
        await runner.start()
        try:
            yield runner, store
        finally:
            await runner.stop()
            store.close()


def test_a_table_source_records_a_row_after_the_store_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_table_after_faults(tmp_path, caplog))


async def _table_after_faults(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with started(tmp_path, TABLE) as (runner, store):
        table = runner.directory / "rows.csv"
        store.failures = 2
        with caplog.at_level(logging.WARNING, logger="automations.runner"):
            with open(table, "a") as f:
                f.write("ada@example.com\n")
            await _until(lambda: store.failures == 0, "the store to fail twice")
            await _until(
                lambda: _keys(store, "rows") == ["ada@example.com"],
                "the row appended while the store failed to be recorded",
            )
            with open(table, "a") as f:
                f.write("bob@example.com\n")
            await _until(
                lambda: _keys(store, "rows") == ["ada@example.com", "bob@example.com"],
                "the next row to be recorded: the table is still watched",
            )
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "stopped: StoreError" in m], messages
    restarted = [m for m in messages if "trigger source source:rows" in m]
    assert len(restarted) == 2, messages
    assert "terminating connection due to administrator command" in restarted[0]
    assert "started again in" in restarted[0]


def test_a_schedule_fires_again_after_the_store_failed(tmp_path: Path) -> None:
    asyncio.run(_schedule_after_faults(tmp_path))


async def _schedule_after_faults(tmp_path: Path) -> None:
    async with started(tmp_path, TICK) as (_runner, store):
        await _until(lambda: len(_keys(store, "tick")) >= 1, "a first fire time")
        store.failures = 1
        await _until(lambda: store.failures == 0, "the store to fail once")
        fired = len(_keys(store, "tick"))
        await _until(
            lambda: len(_keys(store, "tick")) >= fired + 2,
            "two more fire times: the schedule fires again",
        )
        keys = _keys(store, "tick")
        assert len(keys) == len(set(keys))


def _keys(store: SQLiteStore, recipe: str) -> list[str]:
    return sorted(r.event_key for r in store.list_runs(RunFilter(recipe=recipe, limit=1000)))
