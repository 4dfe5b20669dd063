"""From a trigger's event to the row a recipe sees, and the condition over it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from automations.conditions import EVALUATION_ERRORS, STEP_FIELD, Condition, is_truthy
from automations.model import Action, Recipe

__all__ = [
    "ConditionResult",
    "action_condition",
    "evaluate_condition",
    "row_for",
    "test_condition",
]


def row_for(recipe: Recipe, event: Any) -> Any:
    """The row: the event itself, or exactly the recipe's ``columns:`` computed over it.

    A column whose expression cannot be evaluated on this event (a JMESPath type error) is null.
    """
    if recipe.columns is None:
        return event
    row: dict[str, Any] = {}
    for name, expr in recipe.columns:
        try:
            row[name] = expr.search(event)
        except EVALUATION_ERRORS:
            row[name] = None
    return row


@dataclass(frozen=True, slots=True)
class ConditionResult:
    """Whether ``only_run_if`` passed; ``error`` says why it could not be evaluated (then the
    run is skipped, never failed: a condition only decides whether to run)."""

    passed: bool
    value: Any = None
    error: str | None = None


def evaluate_condition(recipe: Recipe, row: Any) -> ConditionResult:
    cond = recipe.condition
    if cond is None:
        return ConditionResult(True, True)
    return test_condition(cond, row, "only_run_if")


def test_condition(cond: Condition, row: Any, what: str) -> ConditionResult:
    """``cond`` over ``row``; an expression that cannot be evaluated on this row is false."""
    try:
        value = cond.search(row)
    except EVALUATION_ERRORS as exc:
        return ConditionResult(False, None, f"{what} could not be evaluated: {exc}")
    return ConditionResult(is_truthy(value), value)


def action_condition(action: Action, row: Any, steps: Mapping[str, Any]) -> ConditionResult:
    """An action's ``only_run_if`` (passed when it has none) over the row and, when it reads
    them, the responses of earlier steps as the fields ``"@<step id>"`` (null for a step that
    was skipped)."""
    if action.condition is None:
        return ConditionResult(True, True)
    data = row
    if action.reads_steps:
        data = dict(row) if isinstance(row, Mapping) else {}
        for step in action.reads_steps:
            data[STEP_FIELD + step] = steps.get(step)
    return test_condition(action.condition, data, f"{action.id}: only_run_if")
