"""Condition + render throughput on one core, for a compiled example recipe.

``recipes/new-lead-to-quo.yaml`` (a table row becomes a Quo contact and a text: an
``only_run_if``, eleven ``/Column`` values, one ``{/Column ?? fallback}`` text and a ``${ENV}``
sender) is compiled once; 50,000 generated lead rows (phone numbers written the ways people type
them) then go through, per row:

- (a) ``evaluate_condition`` and every action's ``only_run_if`` and templates
  (``action.params.render(ctx)``): what the engine does before any I/O;
- (b) the same, but each action through ``render_action``, which also builds the
  ``OutboundRequest``: phone numbers to E.164 and the body checked against the vendor's schema.

Target (the render-performance issue): (a) at least 50,000 rows/s.

Run: ``python bench/bench_render.py`` (about 40 s). Prints medians of several repeats.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automations.execution.render import render_action
from automations.execution.rows import evaluate_condition, row_for
from automations.model import Recipe
from automations.recipes.compiler import load_recipe
from automations.templates import RenderContext

ROWS = 50_000
REPEATS_RENDER = 7
REPEATS_BUILD = 3
TARGET_ROWS_PER_SECOND = 50_000
RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "new-lead-to-quo.yaml"
ENV = {"QUO_FROM": "+15555550199"}

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "", "Radia"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
_COMPANY = ["Analytical Engines", "Compilers Inc", "Bletchley", "", "Mathematisch Centrum"]
_PHONE_FORMS = ["({a}) {b}-{c}", "{a}.{b}.{c}", "+1 {a} {b} {c}", "{a}-{b}-{c}", "1{a}{b}{c}"]


def generate_rows(n: int) -> list[dict[str, Any]]:
    """``n`` lead rows, all with a phone number (every row renders both actions)."""
    rng = random.Random(42)
    rows = []
    for i in range(n):
        form = rng.choice(_PHONE_FORMS)
        phone = form.format(a=f"{rng.randint(201, 989)}", b="555", c=f"{rng.randint(0, 9999):04d}")
        rows.append(
            {
                "Email": f"lead{i}@example.com",
                "First Name": rng.choice(_FIRST),
                "Last Name": rng.choice(_LAST),
                "Company": rng.choice(_COMPANY),
                "Phone": phone,
            }
        )
    return rows


def condition_and_render(recipe: Recipe, rows: list[dict[str, Any]]) -> int:
    rendered = 0
    for event in rows:
        row = row_for(recipe, event)
        if not evaluate_condition(recipe, row).passed:
            continue
        ctx = RenderContext(row, ENV, {})
        for action in recipe.actions:
            if action.condition is None or action.condition.test(row):
                action.params.render(ctx)
                rendered += 1
    return rendered


def condition_render_and_build(recipe: Recipe, rows: list[dict[str, Any]]) -> int:
    built = 0
    for n, event in enumerate(rows):
        row = row_for(recipe, event)
        if not evaluate_condition(recipe, row).passed:
            continue
        for index, action in enumerate(recipe.actions):
            if action.condition is None or action.condition.test(row):
                render_action(recipe, action, index, row, ENV, {}, run_id=f"run{n}")
                built += 1
    return built


def rates(fn: Callable[[], int], rows: int, repeats: int) -> tuple[float, float, int]:
    """Median and best rows per second over ``repeats`` runs, and what one run produced (the
    best shows what the code can do when the machine is not busy with something else)."""
    measured = []
    produced = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        produced = fn()
        measured.append(rows / (time.perf_counter() - t0))
    return statistics.median(measured), max(measured), produced


def main() -> None:
    result = load_recipe(RECIPE, ENV)
    if result.recipe is None:
        sys.exit(f"{RECIPE} does not compile: {[d.format() for d in result.diagnostics]}")
    recipe = result.recipe
    rows = generate_rows(ROWS)
    condition_and_render(recipe, rows[:1000])  # warm up
    rate_a, best_a, rendered = rates(
        lambda: condition_and_render(recipe, rows), ROWS, REPEATS_RENDER
    )
    rate_b, best_b, built = rates(
        lambda: condition_render_and_build(recipe, rows), ROWS, REPEATS_BUILD
    )
    assert rendered == built == 2 * ROWS, (rendered, built)

    verdict = "met" if rate_a >= TARGET_ROWS_PER_SECOND else "NOT met"
    print(f"{recipe.name}: {ROWS:,} rows, {len(recipe.actions)} actions each, one core")
    print(f"  {'':40} {'median':>10} {'best':>10}")
    print(f"  {'(a) condition + render, rows/s':40} {rate_a:10,.0f} {best_a:10,.0f}")
    print(f"  {'(b) (a) + render_action, rows/s':40} {rate_b:10,.0f} {best_b:10,.0f}")
    print(f"  {'per row, us: (a)':40} {1e6 / rate_a:10.1f} {1e6 / best_a:10.1f}")
    print(f"  {'per row, us: (b)':40} {1e6 / rate_b:10.1f} {1e6 / best_b:10.1f}")
    print(f"  repeats: (a) {REPEATS_RENDER}, (b) {REPEATS_BUILD}")
    print(f"  target: (a) >= {TARGET_ROWS_PER_SECOND:,} rows/s (median): {verdict}")


if __name__ == "__main__":
    main()
