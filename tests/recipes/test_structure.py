"""Schema violations: unknown keys with did-you-mean, missing keys, types, trigger kinds."""

from __future__ import annotations

from collections.abc import Callable

from automations.recipes.compiler import LoadResult
from tests.recipes.conftest import codes
from tests.recipes.test_loader import GOOD


def test_unknown_key_did_you_mean(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("only_run_if", "only_run_iff"))
    assert codes(result.diagnostics) == [("SCH001", 4, 1)]
    assert (
        result.diagnostics[0].message
    ) == 'unknown key "only_run_iff" in the recipe (did you mean "only_run_if"?)'


def test_unknown_action_kind(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("quo.send_sms", "quo.send_smss"))
    assert codes(result.diagnostics) == [("SCH001", 6, 5)]
    assert '(did you mean "quo.send_sms"?)' in result.diagnostics[0].message


def test_missing_required(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace('      content: "Hi {/First Name}!"\n', ""))
    assert codes(result.diagnostics) == [("SCH002", 6, 5)]
    assert 'missing the required key "content"' in result.diagnostics[0].message


def test_wrong_type(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("name: lead", "name: [lead]"))
    assert codes(result.diagnostics) == [("SCH003", 1, 7)]
    assert result.diagnostics[0].message == "name must be text, not a list"


def test_no_trigger_kind(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("  table: {path: leads.csv, key: Email}", "  {}"))
    assert [d.code for d in result.diagnostics] == ["SCH005"]
    assert result.diagnostics[0].message == "trigger needs one of: table, webhook, schedule"


def test_two_trigger_kinds(compile_recipe: Callable[..., LoadResult]) -> None:
    two = GOOD.replace(
        "  table: {path: leads.csv, key: Email}",
        "  table: {path: leads.csv, key: Email}\n  schedule: {every: 5m}",
    )
    result = compile_recipe(two)
    assert [d.code for d in result.diagnostics] == ["SCH005"]
    assert "takes only one of" in result.diagnostics[0].message


def test_enum_did_you_mean(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("key: Email}", "key: Email, existing_rows: skp}"))
    assert [d.code for d in result.diagnostics] == ["SCH004"]
    assert '(did you mean "skip"?)' in result.diagnostics[0].message
