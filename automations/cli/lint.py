"""``automations lint`` and ``automations schema``."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

import click

from automations.diagnostics import Diagnostic
from automations.formats import FORMATS
from automations.recipes.compiler import load_directory
from automations.recipes.structure import recipe_schema

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
    "scanning.",
)
@click.option("--no-snippets", is_flag=True, help="text format: omit the source line and caret.")
def lint(paths: tuple[Path, ...], fmt: str, no_snippets: bool) -> None:
    """Check recipe files (directories are searched recursively).

    Exit status: 0 no errors (warnings allowed), 1 errors, 2 usage error.
    """
    # Compiling allocates many small objects that all stay alive until the end: the cyclic
    # garbage collector would only re-scan them (about a tenth of a large lint's time).
    gc.disable()
    try:
        results = load_directory(paths, os.environ)
    finally:
        gc.enable()
    diags: list[Diagnostic] = [d for r in results for d in r.diagnostics]
    if fmt == "text":
        from automations.formats import format_text

        out = format_text(diags, snippets=not no_snippets)
        if not diags:
            out = f"{len(results)} recipe(s) checked, no problems\n"
        click.echo(out, nl=False)
    else:
        click.echo(FORMATS[fmt](diags), nl=False)
    sys.exit(1 if any(d.is_error for d in diags) else 0)


@click.command()
def schema() -> None:
    """Print the recipe JSON Schema (draft-07), for editors and other tools."""
    click.echo(json.dumps(recipe_schema(), indent=2))


COMMANDS = [lint, schema]
