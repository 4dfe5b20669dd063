"""``automations lint`` and ``automations schema``."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

import click

from automations.diagnostics import Diagnostic, drop_ignored
from automations.formats import FORMATS, RULES
from automations.recipes.compiler import load_directory
from automations.recipes.structure import did_you_mean, recipe_schema

__all__ = ["COMMANDS"]


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(FORMATS)),
    default="text",
    show_default=True,
    help="text for people, json for tools, github for pull-request annotations, sarif for code "
    "scanning, gitlab for GitLab Code Quality.",
)
@click.option("--no-snippets", is_flag=True, help="text format: omit the source line and caret.")
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="CODE",
    help="Do not report warnings with this code (repeat it, or separate codes with commas): "
    "--ignore ENV001,ENV002 in CI, where provider keys and secrets are not set.",
)
@click.option(
    "--max-warnings",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Exit 1 when there are more than N warnings (default: warnings never fail).",
)
@click.option(
    "--allow-tables-outside",
    "tables_outside",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory outside the recipes directory that table files may be in (repeatable).",
)
@click.option(
    "--connect",
    is_flag=True,
    help="Also open each database table trigger's database (its ${VARIABLES} from the "
    "environment) and check that the table or query can be read and has the key, changed_by, "
    "every column the recipe reads and every write_back column (DBT001, DBT004).",
)
def lint(
    paths: tuple[Path, ...],
    fmt: str,
    no_snippets: bool,
    ignore: tuple[str, ...],
    max_warnings: int | None,
    tables_outside: tuple[Path, ...],
    connect: bool,
) -> None:
    """Check recipe files and their NAME.test.yaml files (directories are searched
    recursively; a NAME.test.yaml named alone stands for its recipe). A line ending in
    ``# automations: ignore[CODE]`` does not report that warning; errors cannot be ignored.

    Exit status: 0 no errors (warnings allowed), 1 errors (or more warnings than
    --max-warnings), 2 usage error or a file that cannot be read.
    """
    codes = _ignore_codes(ignore)
    # Compiling allocates many small objects that all stay alive until the end: the cyclic
    # garbage collector would only re-scan them (about a tenth of a large lint's time).
    gc.disable()
    try:
        results = load_directory(paths, os.environ, tables_outside=tables_outside, connect=connect)
    finally:
        gc.enable()
    diags: list[Diagnostic] = drop_ignored((d for r in results for d in r.diagnostics), codes)
    if fmt == "text":
        from automations.formats import format_text

        out = format_text(diags, snippets=not no_snippets)
        if not diags:
            out = f"{len(results)} recipe(s) checked, no problems\n"
        click.echo(out, nl=False)
    else:
        click.echo(FORMATS[fmt](diags), nl=False)
    sys.exit(exit_status(diags, max_warnings))


def exit_status(diags: list[Diagnostic], max_warnings: int | None) -> int:
    """lint's documented exit status: 2 when a file could not be read (the check is incomplete,
    whatever else it found), 1 on errors or too many warnings, else 0."""
    unreadable = sorted({d.file for d in diags if d.code == "IO001"})
    if unreadable:
        click.echo(
            f"error: cannot read {', '.join(unreadable)}, so the check is incomplete", err=True
        )
        return 2
    if any(d.is_error for d in diags):
        return 1
    warnings = len(diags)
    if max_warnings is not None and warnings > max_warnings:
        click.echo(
            f"error: {warnings} warning(s), more than --max-warnings {max_warnings}", err=True
        )
        return 1
    return 0


def _ignore_codes(values: tuple[str, ...]) -> frozenset[str]:
    codes = frozenset(c.strip().upper() for v in values for c in v.split(",") if c.strip())
    for code in sorted(codes):
        if code not in RULES:
            raise click.BadParameter(
                f"{code} is not a lint code{did_you_mean(code, RULES)}; see docs/lint.md",
                param_hint="--ignore",
            )
    return codes


@click.command()
def schema() -> None:
    """Print the recipe JSON Schema (draft-07), for editors and other tools."""
    click.echo(json.dumps(recipe_schema(), indent=2))


COMMANDS = [lint, schema]
