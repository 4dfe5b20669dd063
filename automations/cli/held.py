"""``automations approve`` and ``discard``: a person's decision about held runs."""

from __future__ import annotations

from collections.abc import Callable

import click

from automations.cli import friendly_errors
from automations.cli.history import db_option, open_existing
from automations.execution.held import approve as approve_held
from automations.execution.held import discard as discard_held
from automations.ports import Store
from automations.records import RunStatus

__all__ = ["COMMANDS"]

_recipe_option = click.option(
    "--recipe", "recipe", required=True, help="The recipe whose held runs this decides."
)


def _nothing_held(store: Store, recipe: str) -> None:
    others = store.count_by_recipe(RunStatus.HELD)
    click.echo(f"no held runs for recipe {recipe}")
    if others:
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(others.items()))
        click.echo(f"held runs wait for: {listed}")


def _end_held(db: str | None, recipe: str, end: Callable[[Store, str], int]) -> int:
    """``end`` (approve or discard) the runs held for ``recipe``; when there are none, say
    which recipes do have held runs."""
    store = open_existing(db)
    try:
        n = end(store, recipe)
        if not n:
            _nothing_held(store, recipe)
    finally:
        store.close()
    return n


@click.command()
@_recipe_option
@db_option
@friendly_errors
def approve(recipe: str, db: str | None) -> None:
    """Release the runs held for RECIPE by its flood_limit: they run (a running runner picks
    them up within a second; otherwise the next start does)."""
    if n := _end_held(db, recipe, approve_held):
        click.echo(f"approved {n} held run(s) of {recipe}: they run now")


@click.command()
@_recipe_option
@db_option
@friendly_errors
def discard(recipe: str, db: str | None) -> None:
    """End the runs held for RECIPE as `discarded`: never sent, kept in the audit."""
    if n := _end_held(db, recipe, discard_held):
        click.echo(f"discarded {n} held run(s) of {recipe}: nothing was sent")


COMMANDS = [approve, discard]
