"""Which version of a recipe ran: its source kept by content hash, in the state store."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from automations.errors import StoreError
from automations.model import Recipe
from automations.ports import StateStore
from automations.recipes.compiler import load_recipe, load_recipe_text
from automations.records import RunRecord

__all__ = ["condition_source", "load_version", "remember_version"]

_VERSIONS = "recipe-versions"


def remember_version(state: StateStore, recipe: Recipe) -> None:
    """Keep the recipe's source by content hash, so ``replay`` and ``show`` know what ran."""
    if state.get_state(_VERSIONS, recipe.content_hash) is None:
        doc = {"name": recipe.name, "path": str(recipe.source), "text": recipe.text}
        state.set_state(_VERSIONS, [(recipe.content_hash, json.dumps(doc))])


def load_version(
    state: StateStore, run: RunRecord, env: Mapping[str, str], *, prefer_current: bool = True
) -> Recipe:
    """The recipe for ``run``. For a replay (``prefer_current``): the file it came from as it is
    now (a fix made since is used), or, if that file is gone or broken, the exact version that
    ran. For a run resumed after a restart (``prefer_current=False``): the exact version it
    started with."""
    raw = state.get_state(_VERSIONS, run.recipe_hash or "")
    if raw is None:
        raise StoreError(
            f"run {run.id} does not record which recipe file ran it; pass --recipe FILE"
        )
    doc = json.loads(raw)
    path = Path(doc["path"])
    if prefer_current and path.is_file():
        current = load_recipe(path, env)
        if current.recipe is not None and current.recipe.name == run.recipe:
            return current.recipe
    stored = load_recipe_text(doc["text"], str(path), base_dir=path.parent, env=env, source=path)
    if stored.recipe is None:
        raise StoreError(f"the recorded version of recipe {run.recipe} no longer compiles")
    return stored.recipe


def condition_source(state: StateStore, run: RunRecord) -> str | None:
    """The ``only_run_if`` of the recipe version that ran ``run`` as its file wrote it
    (``None``: it had none), or a note saying the version is not recorded: what ``show`` and
    the console print beside the condition's result."""
    try:
        recipe = load_version(state, run, {}, prefer_current=False)
    except Exception:  # not recorded, or no longer compiles: say so beside the result
        return "(the expression of the version that ran is not recorded)"
    return recipe.condition.source if recipe.condition is not None else None
