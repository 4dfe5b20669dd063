"""``automations doctor``: are the connections the recipes need working? Read-only calls."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click

from automations.cli import friendly_errors
from automations.connections import Connections, ConnectionSettings
from automations.doctor import Check, Verdict, diagnose
from automations.recipes.compiler import load_directory

__all__ = ["COMMANDS"]


@click.command()
@click.argument(
    "paths",
    nargs=-1,
    type=click.Path(exists=True, path_type=Path),
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@friendly_errors
def doctor(paths: tuple[Path, ...], fmt: str) -> None:
    """Check each configured connection against the real API with read-only calls: the Quo key
    is accepted (through Maton: the connection is active), each recipe's SMS sender is a number
    of the workspace with US messaging not restricted (GET /v1/phone-numbers), the Loops key is
    accepted (GET /v1/api-key). PATHS are the recipes (files or directories) whose senders and
    connections to check. Prints a table; exits 1 when anything is wrong."""
    env = dict(os.environ)
    recipes = [r.recipe for r in load_directory(list(paths), env) if r.recipe is not None]
    settings = ConnectionSettings.from_env(env)

    async def main() -> list[Check]:
        async with Connections(settings) as connections:
            return await diagnose(recipes, env, connections)

    checks = asyncio.run(main())
    if fmt == "json":
        rows = [{**asdict(c), "verdict": c.verdict.value} for c in checks]
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo("\n".join(table(checks)))
    if any(c.verdict is Verdict.PROBLEM for c in checks):
        sys.exit(1)


def table(checks: list[Check]) -> list[str]:
    """The checks as aligned text columns: CONNECTION CHECK RESULT DETAIL."""
    rows = [("CONNECTION", "CHECK", "RESULT", "DETAIL")] + [
        (c.connection, c.what, c.verdict.value, c.detail) for c in checks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:3])) + "  " + r[3] for r in rows
    ]


COMMANDS = [doctor]
