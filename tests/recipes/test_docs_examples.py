"""The recipe in docs/recipes.md that uses every action compiles without a finding."""

from __future__ import annotations

import re
from pathlib import Path

from automations.actions import ACTIONS
from automations.recipes.compiler import load_recipe_text
from automations.recipes.upsert import UPSERT

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"


def test_the_every_action_example_compiles_and_uses_every_action(tmp_path: Path) -> None:
    text = DOC.read_text("utf-8")
    [block] = re.findall(r"```yaml\n(# every-action\.yaml.*?)```", text, re.S)
    env = {"QUO_WEBHOOK_SECRET": "s", "QUO_FROM": "+15555550199", "QUO_API_KEY": "k"}
    result = load_recipe_text(
        block, "every-action.yaml", base_dir=tmp_path, env={**env, "LOOPS_API_KEY": "k"}
    )
    assert result.diagnostics == ()
    assert result.recipe is not None
    kinds = {a.kind for a in result.recipe.actions}
    assert kinds == set(ACTIONS)  # the upsert compiles into find, update and create
    assert UPSERT in block
