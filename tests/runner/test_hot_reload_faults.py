"""Hot reload survives anything: an exception anywhere in a reload is logged with the file,
shown in ``/healthz``, and the next change reloads as usual.

Before, one exception ended the watcher task silently: later edits were never loaded and
``/healthz`` stayed 200 with no error. A real runner (watchfiles on a temporary folder, a real
SQLite file), in process so that a fault can be injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from automations.connections import Connections, ConnectionSettings
from automations.runner.registry import RecipeSet
from automations.runner.service import Runner
from automations.stores import open_store

pytestmark = pytest.mark.integration

HOOK = """name: hook
trigger:
  webhook: {{path: {path}, verify: {{scheme: none}}}}
actions:
  - http.request: {{method: POST, url: "https://x.example/a"}}
"""


class FaultyRunner(Runner):
    """A runner whose next ``faults`` hot reloads raise where no recipe makes them raise."""

    faults = 0

    def apply_recipes(self, new: RecipeSet, *, initial: bool = False) -> None:
        if not initial and self.faults:
            self.faults -= 1
            raise RuntimeError("injected fault")
        super().apply_recipes(new, initial=initial)


async def _until(probe: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not probe():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _save_until(path: Path, text: str, probe: Callable[[], object], what: str) -> None:
    """Save ``text`` to ``path`` until ``probe()`` is true: the watcher starts watching a moment
    after ``start()`` returns, and a save before that moment is not seen."""
    for _ in range(40):
        path.write_text(text)
        try:
            await _until(probe, what, timeout=0.5)
            return
        except pytest.fail.Exception:
            continue
    pytest.fail(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def started(tmp_path: Path) -> AsyncIterator[FaultyRunner]:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "hook.yaml").write_text(HOOK.format(path="/hooks/v1"))
    store = open_store(tmp_path / "runs.db")
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with Connections(ConnectionSettings.from_env({}), transport=transport) as conns:
        runner = FaultyRunner(recipes, store, conns, {})
        await runner.start()
        try:
            yield runner
        finally:
            await runner.stop()
            store.close()


def _detail_errors(runner: Runner) -> dict[str, Any]:
    errors: dict[str, Any] = runner.health.answer(detail=True)["detail"]["errors"]
    return errors


def _errors(runner: Runner) -> dict[str, list[tuple[str, int, int]]]:
    return {
        f: [(d["code"], d["line"], d["column"]) for d in ds]
        for f, ds in _detail_errors(runner).items()
    }


def test_an_exception_in_a_reload_does_not_end_hot_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_exception_in_a_reload(tmp_path, caplog))


async def _exception_in_a_reload(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with started(tmp_path) as runner:
        await _fail_then_recover(runner, caplog)


async def _fail_then_recover(runner: FaultyRunner, caplog: pytest.LogCaptureFixture) -> None:
    recipe = runner.directory / "hook.yaml"
    runner.faults = 1
    with caplog.at_level(logging.ERROR, logger="automations.runner"):
        await _save_until(
            recipe,
            HOOK.format(path="/hooks/v2"),
            lambda: runner.reload_errors,
            "the failed reload to be reported",
        )
    assert runner.recipes.webhook("/hooks/v1") is not None  # the running version stays
    assert _errors(runner) == {"hook.yaml": [("INT001", 1, 1)]}
    assert "RuntimeError: injected fault" in _detail_errors(runner)["hook.yaml"][0]["message"]
    assert runner.health.answer(detail=False)["errors"] == 1  # what a monitoring probe sees
    failed = [r for r in caplog.records if "hot reload after a change to" in r.getMessage()]
    assert len(failed) == 1
    assert "hook.yaml failed" in failed[0].getMessage()
    assert failed[0].exc_info is not None  # the traceback is in the log, for the operator

    # the watcher is still there: the next save is loaded and the error is gone
    await _save_until(
        recipe,
        HOOK.format(path="/hooks/v3"),
        lambda: runner.recipes.webhook("/hooks/v3"),
        "the next edit to be loaded",
    )
    assert runner.recipes.webhook("/hooks/v1") is None
    assert _errors(runner) == {}


def test_every_reload_failing_in_a_row_is_survived(tmp_path: Path) -> None:
    asyncio.run(_failures_in_a_row(tmp_path))


async def _failures_in_a_row(tmp_path: Path) -> None:
    async with started(tmp_path) as runner:
        await _three_failures(runner)


async def _three_failures(runner: FaultyRunner) -> None:
    recipe = runner.directory / "hook.yaml"
    runner.faults = 3
    n = 0
    while runner.faults:
        n += 1
        await _save_until(
            recipe,
            HOOK.format(path=f"/hooks/fail{n}"),
            lambda left=runner.faults: runner.faults < left,
            "a failed reload",
        )
    assert runner.recipes.webhook("/hooks/v1") is not None
    await _save_until(
        recipe,
        HOOK.format(path="/hooks/ok"),
        lambda: runner.recipes.webhook("/hooks/ok"),
        "the edit after three failures",
    )
    assert _errors(runner) == {}


def test_the_recipes_folder_removed_then_made_again_is_watched_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_folder_removed(tmp_path, caplog))


async def _folder_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with started(tmp_path) as runner:
        folder = runner.directory
        await _save_until(
            folder / "hook.yaml",
            HOOK.format(path="/hooks/v2"),
            lambda: runner.recipes.webhook("/hooks/v2"),
            "the watcher to run",
        )
        with caplog.at_level(logging.WARNING, logger="automations.runner"):
            shutil.rmtree(folder)
            await _until(lambda: "is gone" in caplog.text, "the missing folder to be noticed")
        assert dict(runner.recipes.by_name) == {}  # its files were deleted with it
        # before, the watch ended with the folder: nothing was ever loaded again
        folder.mkdir()
        await _save_until(
            folder / "hook.yaml",
            HOOK.format(path="/hooks/v3"),
            lambda: runner.recipes.webhook("/hooks/v3"),
            "the folder to be watched again",
        )


def test_a_recipes_folder_replaced_by_another_is_loaded_and_watched(tmp_path: Path) -> None:
    asyncio.run(_folder_replaced(tmp_path))


async def _folder_replaced(tmp_path: Path) -> None:
    async with started(tmp_path) as runner:
        folder = runner.directory
        # a deploy: a fresh checkout renamed into place over the old folder
        fresh = tmp_path / "recipes.new"
        fresh.mkdir()
        (fresh / "hook.yaml").write_text(HOOK.format(path="/hooks/deployed"))
        folder.rename(tmp_path / "recipes.old")
        fresh.rename(folder)
        await _until(lambda: runner.recipes.webhook("/hooks/deployed"), "the new folder's recipe")
        # and edits to the new folder are seen
        await _save_until(
            folder / "hook.yaml",
            HOOK.format(path="/hooks/edited"),
            lambda: runner.recipes.webhook("/hooks/edited"),
            "an edit in the new folder",
        )
        assert (tmp_path / "recipes.old" / "hook.yaml").exists()
