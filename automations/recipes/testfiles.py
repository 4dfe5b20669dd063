"""A recipe's tests: its ``tests:`` list, or a ``NAME.test.yaml`` beside ``NAME.yaml``.

A test file is checked like a recipe (schema, positions, did-you-mean): a mistyped
``request:`` or ``conditon:`` is an error, never a test that passes because it checks nothing.
Each test keeps the file and line it was written at, which is where its result points.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automations.diagnostics import Diagnostic
from automations.model import RecipeTest
from automations.recipes.context import CompileContext
from automations.recipes.files import outside_directory, read_recipe_file
from automations.recipes.structure import check_test_file
from automations.recipes.yamlsource import Path_, parse_yaml

__all__ = ["TEST_SUFFIXES", "recipe_tests", "sibling_tests"]

TEST_SUFFIXES = (".test.yaml", ".test.yml")


def recipe_tests(ctx: CompileContext, raw: Any, at: Path_ = ("tests",)) -> tuple[RecipeTest, ...]:
    """The tests in ``raw`` (a ``tests:`` list found at ``at`` in ``ctx``'s file)."""
    if not isinstance(raw, list):
        return ()
    out = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict):
            continue
        expect = t.get("expect")
        expect = expect if isinstance(expect, dict) else {}  # the schema check reported it
        env = t.get("env")
        env = env if isinstance(env, dict) else {}
        requests = expect.get("requests")
        responses = t.get("responses")
        responses = responses if isinstance(responses, dict) else {}
        out.append(
            RecipeTest(
                name=str(t.get("name") or f"test {i + 1}"),
                event=t.get("row"),
                expect_condition=expect.get("condition"),
                expect_requests=tuple(requests) if isinstance(requests, list) else None,
                env=tuple(sorted((str(k), str(v)) for k, v in env.items())),
                line=ctx.doc.positions.of_value((*at, i))[0],
                file=ctx.doc.file,
                responses=tuple((str(k), v) for k, v in responses.items()),
            )
        )
    return tuple(out)


def sibling_tests(
    path: Path, ctx: CompileContext, name_for: Callable[[Path], str], within: Path
) -> tuple[tuple[RecipeTest, ...], list[Diagnostic]]:
    """The tests of ``NAME.test.yaml`` (or ``.yml``) beside the recipe file ``path``, and the
    findings about that file (named by ``name_for``). A test file that resolves outside
    ``within`` (a resolved directory) is not read: ``IO002``."""
    # string operations, not Path ones: this runs for every recipe file
    text = str(path)
    stem = text[: len(text) - len(path.suffix)]
    for suffix in TEST_SUFFIXES:
        if os.path.isfile(stem + suffix):
            sib = Path(stem + suffix)
            link = os.path.normpath(os.path.join(name_for(path.parent), sib.name))
            refused = outside_directory(sib, within, link, "test file")
            if refused is not None:
                return (), [refused]
            name = name_for(sib)
            source = read_recipe_file(sib, name)
            if isinstance(source, Diagnostic):
                return (), [source]
            doc = parse_yaml(source, name)
            sctx = CompileContext(doc, ctx.base_dir, ctx.env)
            diags = list(doc.diagnostics)
            if doc.value is not None or not diags:
                diags.extend(check_test_file(doc))
            if isinstance(doc.value, dict):
                return recipe_tests(sctx, doc.value.get("tests")), diags
            return recipe_tests(sctx, doc.value, ()), diags
    return (), []
