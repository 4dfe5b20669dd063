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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="automations")
def cli() -> None:
    """Declarative automations: YAML recipes from tables, webhooks and schedules to Quo and
    Loops, validated in CI, run exactly once, audited."""


def _register() -> None:
    # the command modules import ``friendly_errors`` from here, so they are loaded after it
    for name in ("lint", "preview", "history", "serve"):
        module = importlib.import_module(f"automations.cli.{name}")
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="automations")
