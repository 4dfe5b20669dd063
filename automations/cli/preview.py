"""``automations render`` and ``automations test``: see what a recipe would send."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from automations.cli import friendly_errors
from automations.connections import Connections
from automations.diagnostics import Diagnostic
from automations.errors import EventError
from automations.execution.preview import preview, run_recipe_test
from automations.formats import format_text
from automations.junit import CaseResult, SuiteResult, junit_xml
from automations.recipes.compiler import LoadResult, load_directory, load_recipe
from automations.recipes.files import read_regular_file
from automations.triggers.payload import parse_event
from automations.triggers.webhook import DEFAULT_MAX_BODY

__all__ = ["COMMANDS", "parse_row_option", "require_recipe"]


def _read_row_file(name: str) -> str:
    """The text of ``@name`` (``-``: standard input): a regular file of at most
    ``DEFAULT_MAX_BODY`` bytes, the limit of a webhook's body, so a FIFO or ``/dev/zero`` is
    refused at once."""
    if name == "-":
        data: bytes | str = sys.stdin.buffer.read(DEFAULT_MAX_BODY + 1)
    else:
        data = read_regular_file(Path(name), DEFAULT_MAX_BODY)
    if isinstance(data, str):
        raise click.BadParameter(f"cannot read {name}: {data}", param_hint="--row")
    if len(data) > DEFAULT_MAX_BODY:
        raise click.BadParameter(
            f"{'standard input' if name == '-' else name} is larger than "
            f"{DEFAULT_MAX_BODY // 1024 // 1024} MiB, the limit for an event (a webhook's body)",
            param_hint="--row",
        )
    return data.decode("utf-8")


def parse_row_option(value: str) -> dict[str, Any]:
    """``--row '{"Email": ...}'`` or ``--row @file.json`` (``@-`` reads standard input): a JSON
    object, as a row or a webhook's body is (a list or a string would render every column as
    null: an SMS to nobody, a contact with no fields). A file is read as an event is: a regular
    file of at most 1 MiB."""
    try:
        text = _read_row_file(value[1:]) if value.startswith("@") else value
        row = parse_event(text)
    except UnicodeDecodeError as exc:
        raise click.BadParameter(
            f"{value[1:]} is not UTF-8 (byte {exc.start})", param_hint="--row"
        ) from exc
    except EventError as exc:
        text = str(exc).replace("the body", "the row", 1)
        raise click.BadParameter(
            f"{text}; pass a JSON object, or @file.json", param_hint="--row"
        ) from exc
    if not isinstance(row, dict):
        kind = {list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
            type(row), "a number"
        )
        raise click.BadParameter(
            f"must be a JSON object with the row's columns, like "
            f"""'{{"Email": "ada@example.com", "Phone": "+15555550100"}}', not {kind}""",
            param_hint="--row",
        )
    return row


def require_recipe(path: Path) -> LoadResult:
    """Load one recipe, or print its diagnostics and exit 1."""
    result = load_recipe(path, os.environ)
    if result.recipe is None:
        click.echo(format_text([d for d in result.diagnostics if d.is_error]), err=True, nl=False)
        sys.exit(1)
    return result


@click.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--row", "row", required=True, help="The event as JSON, or @file.json.")
@friendly_errors
def render(recipe: Path, row: str) -> None:
    """Print what RECIPE would do for one row: the condition's result and the exact requests
    (method, URL, headers with secrets masked, body). Nothing is sent."""
    event = parse_row_option(row)
    loaded = require_recipe(recipe)
    assert loaded.recipe is not None
    out = preview(loaded.recipe, event, os.environ, Connections.for_preview(os.environ))
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


@click.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--junit-xml",
    "junit_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a JUnit XML report to FILE (one testcase per recipe test).",
)
@friendly_errors
def test_command(paths: tuple[Path, ...], junit_file: Path | None) -> None:
    """Run the tests recipes carry (``tests:`` or a sibling NAME.test.yaml): a line per test
    with the file and line it is written at; exit status 1 if any fails, or a recipe or test
    file has errors (a test file with errors is checked like a recipe, and none of its tests
    run); 2 on a usage error or when the report cannot be written."""
    results = load_directory(paths, {})
    failed = 0
    total = 0
    broken: list[Diagnostic] = []
    suites: list[SuiteResult] = []
    for r in results:
        errors = tuple(d for d in r.diagnostics if d.is_error)
        broken.extend(errors)
        if r.recipe is None or errors:
            # a test file with mistakes would check less than it says: none of it runs
            name = r.file if r.recipe is None else r.recipe.name
            suites.append(SuiteResult(r.file, name, broken=errors))
            continue
        cases = []
        for t in r.recipe.tests:
            total += 1
            started = time.perf_counter()
            outcome = run_recipe_test(r.recipe, t)
            cases.append(CaseResult(outcome, t.file or r.file, time.perf_counter() - started))
            mark = "PASS" if outcome.passed else "FAIL"
            click.echo(f"{mark} {t.file or r.file}:{t.line} {r.recipe.name}: {t.name}")
            for p in outcome.problems:
                click.echo(f"     {p}")
            failed += not outcome.passed
        suites.append(SuiteResult(r.file, r.recipe.name, tuple(cases)))
    if broken:
        click.echo(format_text(broken), nl=False)
    click.echo(f"{total - failed} passed, {failed} failed")
    if junit_file is not None:
        try:
            junit_file.write_text(junit_xml(suites), "utf-8")
        except OSError as exc:
            click.echo(
                f"error: cannot write the JUnit report {junit_file}: {exc.strerror}", err=True
            )
            sys.exit(2)
    sys.exit(1 if failed or broken else 0)


COMMANDS = [render, test_command]
