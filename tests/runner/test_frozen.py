"""While a runner runs, the recipes it loaded are out of the cyclic garbage collector's reach (a
full collection does not walk them), and once it stops nothing stays frozen."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from automations.connections import Connections, ConnectionSettings
from automations.runner.service import Runner, RunnerOptions
from automations.stores import SQLiteStore

pytestmark = pytest.mark.integration

RECIPE = """
name: hook-{i}
trigger:
  webhook: {{path: /hooks/{i}, verify: {{scheme: none}}}}
actions:
  - http.request: {{method: POST, url: "http://127.0.0.1:9/hook", json: {{id: /id}}}}
"""


def test_the_loaded_recipes_are_frozen_while_the_runner_runs(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    for i in range(3):
        (tmp_path / "recipes" / f"hook-{i}.yaml").write_text(RECIPE.format(i=i).lstrip())
    seen: dict[str, object] = {}

    async def go() -> None:
        store = SQLiteStore(tmp_path / "runs.db")
        async with Connections(ConnectionSettings.from_env({})) as conns:
            runner = Runner(tmp_path / "recipes", store, conns, {}, RunnerOptions(dry_run=True))
            await runner.start()
            try:
                await asyncio.sleep(0.05)
                recipes = list(runner.recipes.by_name.values())
                tracked = {id(o) for o in gc.get_objects()}
                seen["frozen"] = gc.get_freeze_count()
                seen["tracked"] = [r.name for r in recipes if id(r) in tracked]
                seen["loaded"] = len(recipes)
            finally:
                await runner.stop()
                store.close()

    asyncio.run(go())
    assert seen["loaded"] == 3
    assert seen["tracked"] == []  # none of them is walked by a collection
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 0
    assert gc.get_freeze_count() == 0
