"""Previews and recipe tests: what a recipe would send for a row, without sending anything."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from automations.connections import Connections
from automations.errors import ConfigError, RenderError
from automations.execution.executor import KEY_VARIABLES
from automations.execution.render import PreviewEnv, render_action, shown_request
from automations.execution.rows import action_condition, evaluate_condition, row_for
from automations.model import Recipe, RecipeTest
from automations.outbound import OutboundRequest
from automations.redact import Redactor, short_secrets

__all__ = ["TestOutcome", "preview", "run_recipe_test"]

PREVIEW_RUN_ID = "preview"


def preview(
    recipe: Recipe,
    event: Any,
    env: Mapping[str, str],
    connections: Connections,
    responses: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The row, the condition's result and every request the recipe would send for ``event``.

    Secrets are masked (``${NAME}``); unset variables show as ``${NAME}`` and are listed in
    ``unset_env``. Values read from an earlier step's response (``/@step...``, ``@step``) come
    from ``responses`` (a recipe test's ``responses:``) and are null otherwise, since nothing is
    sent.
    """
    responses = dict(responses or {})
    penv = PreviewEnv(env)
    red = Redactor.for_env(env, {*recipe.env_names, *KEY_VARIABLES})
    short = short_secrets(env, recipe.env_names)
    row = row_for(recipe, event)
    cond = evaluate_condition(recipe, row)
    out: dict[str, Any] = {
        "recipe": recipe.name,
        "row": red.value(row),
        "condition": {
            "expression": recipe.condition.source if recipe.condition else None,
            "passed": cond.passed,
            **({"error": cond.error} if cond.error else {}),
        },
        "steps": [],
    }
    steps: list[dict[str, Any]] = out["steps"]
    if cond.passed:
        for index, action in enumerate(recipe.actions):
            entry: dict[str, Any] = {"id": action.id, "action": action.kind}
            if not action_condition(action, row, responses).passed:
                entry["skipped"] = True
            else:
                try:
                    req = render_action(
                        recipe, action, index, row, penv, responses, run_id=PREVIEW_RUN_ID
                    )
                except (RenderError, ConfigError) as exc:
                    entry["error"] = red.text(str(exc))
                else:

                    def describe(req: OutboundRequest) -> dict[str, Any]:
                        url, headers = connections.describe(req)
                        return {
                            "method": req.method,
                            "url": red.text(url),
                            "headers": {k: red.text(v) for k, v in headers},
                            "body": red.value(req.json),
                        }

                    entry["request"] = describe(req)
                    if short:
                        entry["request"] = shown_request(
                            recipe, action, index, row, penv, responses, entry["request"], short,
                            run_id=PREVIEW_RUN_ID, describe=describe,
                        )  # fmt: skip
            steps.append(entry)
    if penv.unset:
        out["unset_env"] = sorted(penv.unset)
    return out


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """One recipe test's result; ``problems`` is empty when it passed."""

    recipe: str
    name: str
    line: int
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def _subset(expected: Any, actual: Any, path: str, problems: list[str]) -> None:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            problems.append(f"{path}: expected a mapping, got {actual!r}")
            return
        for k, v in expected.items():
            if k not in actual:
                problems.append(f"{path}.{k}: missing (expected {v!r})")
            else:
                _subset(v, actual[k], f"{path}.{k}", problems)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            problems.append(f"{path}: expected {expected!r}, got {actual!r}")
            return
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _subset(e, a, f"{path}[{i}]", problems)
    elif expected != actual:
        problems.append(f"{path}: expected {expected!r}, got {actual!r}")


def run_recipe_test(recipe: Recipe, test: RecipeTest) -> TestOutcome:
    """Render ``test.event`` with only the test's own environment and compare."""
    env = dict(test.env)
    result = preview(recipe, test.event, env, Connections.for_preview(env), dict(test.responses))
    problems: list[str] = []
    if test.expect_condition is not None and result["condition"]["passed"] != test.expect_condition:
        problems.append(
            f"condition: expected {str(test.expect_condition).lower()}, got "
            f"{str(result['condition']['passed']).lower()}"
            + (f" ({result['condition']['error']})" if "error" in result["condition"] else "")
        )
    if test.expect_requests is not None:
        steps = result["steps"]
        if len(test.expect_requests) > len(steps):
            problems.append(
                f"requests: expected {len(test.expect_requests)}, the recipe rendered {len(steps)}"
            )
        for i, (want, step) in enumerate(zip(test.expect_requests, steps, strict=False)):
            where = f"requests[{i}]"
            if want is None:
                if not step.get("skipped"):
                    problems.append(f"{where}: expected the step to be skipped")
            elif "error" in step:
                problems.append(f"{where}: {step['error']}")
            elif step.get("skipped"):
                problems.append(f"{where}: the step was skipped")
            else:
                _subset(want, step["request"], where, problems)
    return TestOutcome(recipe.name, test.name, test.line, tuple(problems))
