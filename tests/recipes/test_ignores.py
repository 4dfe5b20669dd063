"""``# automations: ignore[CODE]`` silences a warning on one line; errors stay."""

from __future__ import annotations

from collections.abc import Callable

from automations.diagnostics import inline_ignores
from automations.recipes.compiler import LoadResult

Compile = Callable[..., LoadResult]

RECIPE = """name: lead
trigger:
  table: {{path: leads.csv, key: Email}}
actions:
  - quo.send_sms:{same}
      from: ${{QUO_FROM}}
      to: [/Phone]
      content: "Code $PROMO_CODE"
"""
NO_KEYS = {"QUO_FROM": "+15555550199"}


def codes(result: LoadResult) -> list[tuple[str, int]]:
    return [(d.code, d.line) for d in result.diagnostics]


def test_without_comments_the_warnings_are_reported(compile_recipe: Compile) -> None:
    result = compile_recipe(RECIPE.format(same=""), env=NO_KEYS)
    assert codes(result) == [("ENV002", 5), ("ENV003", 8)]


def test_a_comment_at_the_end_of_the_line(compile_recipe: Compile) -> None:
    text = RECIPE.format(same="  # automations: ignore[ENV002]")
    assert codes(compile_recipe(text, env=NO_KEYS)) == [("ENV003", 8)]


def test_a_comment_on_the_line_before_and_several_codes(compile_recipe: Compile) -> None:
    text = RECIPE.format(same="").replace(
        '      content: "Code',
        '      # automations: ignore[ENV003, SEC002]\n      content: "Code',
    )
    assert codes(compile_recipe(text, env=NO_KEYS)) == [("ENV002", 5)]


def test_errors_cannot_be_ignored(compile_recipe: Compile) -> None:
    text = RECIPE.format(same="").replace(
        "from: ${QUO_FROM}", "from: $QUO_FROM  # automations: ignore[ENV003]"
    )
    result = compile_recipe(text, env=NO_KEYS)
    assert codes(result) == [("ENV002", 5), ("ENV003", 6), ("ENV003", 8)]
    assert result.diagnostics[1].is_error
    assert result.recipe is None


def test_inline_ignores_parses_codes() -> None:
    text = "a: 1  # automations: ignore[env001,ENV002]\n# automations: ignore[SEC002]\nb: 2\n"
    assert inline_ignores(text) == {
        1: frozenset({"ENV001", "ENV002"}),
        3: frozenset({"SEC002"}),
    }
