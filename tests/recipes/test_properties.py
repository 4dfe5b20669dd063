"""Property tests: arbitrary YAML and arbitrary rows give diagnostics or output, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automations.conditions import compile_expression
from automations.diagnostics import Diagnostic
from automations.execution.rows import evaluate_condition
from automations.recipes.compiler import load_recipe_text
from automations.templates import RenderContext, parse_template, to_text

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
rows = st.dictionaries(st.sampled_from(["Email", "First Name", "Phone", "n", "x y"]), json_values)

RECIPE_KEYS = ["name", "trigger", "actions", "only_run_if", "columns", "tests", "description"]
yaml_like = st.recursive(
    json_scalars | st.sampled_from(["/Phone", "{/x", "${A}", "//a", "table", "webhook"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from([*RECIPE_KEYS, "table", "path", "key", "quo.send_sms"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


def _check(diags: tuple[Diagnostic, ...]) -> None:
    for d in diags:
        assert d.line >= 1 and d.column >= 1
        assert d.code and d.message


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes(text: str) -> None:
    result = load_recipe_text(text, "r.yaml", base_dir=Path("."), env={})
    _check(result.diagnostics)
    assert result.recipe is None or result.diagnostics is not None


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(yaml_like)
def test_arbitrary_structures_never_crash(value: Any) -> None:
    text = yaml.safe_dump(value, allow_unicode=True)
    result = load_recipe_text(text, "r.yaml", base_dir=Path("."), env={})
    _check(result.diagnostics)


@settings(max_examples=200, deadline=None)
@given(json_values, rows)
def test_templates_render_any_row(value: Any, row: dict[str, Any]) -> None:
    try:
        tpl = parse_template(value)
    except ValueError:
        return  # a malformed reference: lint reports it
    out = tpl.render(RenderContext(row, {"A": "a"}, {}))
    assert isinstance(to_text(out), str)


@settings(max_examples=200, deadline=None)
@given(
    rows,
    st.sampled_from(
        [
            "Phone != null && Phone != ''",
            "length(Phone) > `3`",
            "\"First Name\" == 'Ada'",
            "contains(Email, '@')",
            "n > `2`",
            "to_number(n) > `1`",
            '"x y"[0]',
        ]
    ),
)
def test_conditions_over_any_row(row: dict[str, Any], source: str) -> None:
    from automations.model import Recipe, TableSpec, TableTrigger

    recipe = Recipe(
        "r",
        Path("r.yaml"),
        "h",
        TableTrigger(TableSpec(Path("t.csv"), "Email")),
        (),
        condition=compile_expression(source),
    )
    result = evaluate_condition(recipe, row)
    assert isinstance(result.passed, bool)
    assert result.error is None or "could not be evaluated" in result.error
