"""The ``automations`` command. Library errors become friendly messages here, and only here."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from automations import __version__
from automations.errors import AutomationsError

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn an ``AutomationsError`` into ``error: message`` and exit status 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AutomationsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


#: command name -> module defining it. Modules load on first use, so ``automations lint``
#: does not pay for importing the HTTP server and client stacks.
_COMMANDS = {
    "lint": "lint",
    "schema": "lint",
    "render": "preview",
    "test": "preview",
    "exec": "history",
    "runs": "history",
    "show": "history",
    "replay": "operate",
    "resolve": "operate",
    "run": "serve",
    "status": "status",
    "doctor": "doctor",
    "approve": "held",
    "discard": "held",
    "db": "database",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMANDS.get(cmd_name)
        if module is None:
            return None
        loaded = importlib.import_module(f"automations.cli.{module}")
        found: click.Command | None = next((c for c in loaded.COMMANDS if c.name == cmd_name), None)
        return found


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="automations")
def cli() -> None:
    """Declarative automations: YAML recipes from tables, webhooks and schedules to Quo and
    Loops, validated in CI, run exactly once, audited."""


def main() -> None:
    cli(prog_name="automations")
