"""The loader: YAML problems become diagnostics with exact positions."""

from __future__ import annotations

from collections.abc import Callable

from automations.diagnostics import Severity
from automations.recipes.compiler import LoadResult
from tests.recipes.conftest import codes

GOOD = """
name: lead
trigger:
  table: {path: leads.csv, key: Email}
only_run_if: "Phone != null && Phone != ''"
actions:
  - quo.send_sms:
      from: ${QUO_FROM}
      to: [/Phone]
      content: "Hi {/First Name}!"
"""


def test_good_recipe_compiles(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD)
    assert result.diagnostics == ()
    assert result.recipe is not None
    assert result.recipe.name == "lead"
    assert [a.kind for a in result.recipe.actions] == ["quo.send_sms"]
    assert result.recipe.env_names == frozenset({"QUO_FROM"})


def test_yaml_syntax_error_has_position(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe("name: x\ntrigger: [a, b\nactions: []\n")
    assert result.recipe is None
    assert [d.code for d in result.diagnostics] == ["YAML001"]
    assert result.diagnostics[0].line == 3


def test_duplicate_key_is_an_error_not_last_wins(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD + "name: other\n")
    assert ("YAML002", 10, 1) in codes(result.diagnostics)
    assert "first defined at line 1" in result.diagnostics[0].message
    assert result.recipe is None


def test_non_string_key(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("name: lead", "name: lead\nyes: 1"))
    d = [d for d in result.diagnostics if d.code == "YAML003"]
    assert [(x.line, x.column) for x in d] == [(2, 1)]
    assert "quote it" in d[0].message


def test_unquoted_plus_number_says_quote_it(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("${QUO_FROM}", "+15551230000"))
    assert codes(result.diagnostics) == [("YAML004", 7, 13)]
    assert result.diagnostics[0].message == (
        'YAML reads +15551230000 as a number, losing the "+"; quote it: "+15551230000"'
    )


def test_second_document_is_rejected(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD + "---\nname: two\n")
    assert [d.code for d in result.diagnostics] == ["YAML001"]


def test_empty_file(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe("")
    assert [d.code for d in result.diagnostics] == ["SCH003"]
    assert result.diagnostics[0].severity is Severity.ERROR
