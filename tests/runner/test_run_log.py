"""The runner's log: each recipe's backlog progress every ``backlog_log_every_s`` while runs wait
(nothing when none wait), and a line per run outcome with the run's id, at WARNING when someone
should look."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path

import pytest

from automations.connections import Connections, ConnectionSettings
from automations.execution.progress import BacklogProgress
from automations.records import RunRecord, RunStatus
from automations.runner.registry import RecipeSet, reload
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
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gone:")]
    assert len(lines) >= 2
    assert set(lines) == {"gone: 0 of 2 sent, waiting: the recipe is not loaded"}


def test_no_backlog_no_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "recipes").mkdir()
    with caplog.at_level(logging.INFO, logger="automations"):
        _run_for(tmp_path / "recipes", tmp_path / "runs.db", 0.2)
    assert not [r for r in caplog.records if " sent, " in r.getMessage()]


class _Outcome:
    """An executor stand-in: every run ends with ``status``."""

    def __init__(self, status: RunStatus) -> None:
        self.status = status

    async def execute(
        self, run: RunRecord, recipe: object, *, dry_run: bool, lease: object = None
    ) -> RunRecord:
        return dataclasses.replace(run, status=self.status, error="sms: no answer came back")


@pytest.mark.parametrize(
    ("status", "level"),
    [
        (RunStatus.SUCCEEDED, "INFO"),
        (RunStatus.FAILED, "WARNING"),
        (RunStatus.UNKNOWN, "WARNING"),  # a person must check and resolve it
    ],
)
def test_each_run_line_carries_its_id_and_unknown_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: RunStatus, level: str
) -> None:
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    (recipe_dir / "hook.yaml").write_text(
        "name: hook\ntrigger:\n  webhook: {path: /h, verify: {scheme: none}}\n"
        'actions:\n  - http.request: {method: POST, url: "https://x.example/a"}\n'
    )

    async def go() -> None:
        store = SQLiteStore(tmp_path / "runs.db")
        async with Connections(ConnectionSettings.from_env({})) as conns:
            runner = Runner(recipe_dir, store, conns, {})
            runner.recipes = reload(RecipeSet(), recipe_dir, {})
            runner.executor = _Outcome(status)  # type: ignore[assignment]
            run = make_run("0123456789abcdef0123456789abcdef", recipe="hook")
            store.enqueue(run)
            with caplog.at_level(logging.INFO, logger="automations.runs"):
                await runner._execute(run)
        store.close()

    asyncio.run(go())
    [record] = [r for r in caplog.records if r.name == "automations.runs"]
    assert record.levelname == level
    assert record.getMessage().startswith("run 0123456789ab hook key-0123456789abcdef")
    assert record.run["run_id"] == "0123456789abcdef0123456789abcdef"  # type: ignore[attr-defined]


def test_json_lines_about_a_run_carry_its_whole_id() -> None:
    from automations.runner.logs import _JsonFormatter

    record = logging.LogRecord(
        "automations.runner", logging.WARNING, "", 0, "run x waits", (), None
    )
    record.run_id = "0123456789abcdef0123456789abcdef"
    line = json.loads(_JsonFormatter().format(record))
    assert (line["run_id"], line["message"]) == ("0123456789abcdef0123456789abcdef", "run x waits")


def test_a_paused_connection_says_so_in_the_progress_line(tmp_path: Path) -> None:
    """The runner knows what the store does not: a connection its breaker paused."""
    from automations.outbound import Connection

    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    (recipe_dir / "sms.yaml").write_text(
        "name: sms\ntrigger:\n  webhook: {path: /h, verify: {scheme: none}}\nactions:\n"
        '  - quo.send_sms: {from: "+15555550199", to: [/Phone], content: hi}\n'
    )
    store = SQLiteStore(tmp_path / "runs.db")
    for i in range(3):
        store.enqueue(make_run(f"r{i}", recipe="sms", status=RunStatus.PENDING))

    async def go() -> str:
        async with Connections(ConnectionSettings.from_env({"QUO_API_KEY": "k"})) as conns:
            runner = Runner(recipe_dir, store, conns, {"QUO_API_KEY": "k"})
            runner.recipes = reload(RecipeSet(), recipe_dir, {"QUO_API_KEY": "k"})
            breaker = conns.breaker_for(Connection.QUO)
            assert breaker is not None
            breaker.refused(402, "Quo answered 402: the account is out of credit", probe=False)
            [line] = BacklogProgress().update(0.0, {"sms": 3}, runner.held_by(["sms"]))
            return line

    line = asyncio.run(go())
    store.close()
    assert line == "sms: 0 of 3 sent, paused: Quo answered 402: the account is out of credit"
