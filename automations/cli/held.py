"""``automations approve`` and ``discard``: a person's decision about held runs."""

from __future__ import annotations

from pathlib import Path

import click

from automations.cli import friendly_errors
from automations.cli.history import db_option, resolve_db
from automations.execution.held import approve as approve_held
from automations.execution.held import discard as discard_held
from automations.records import RunStatus
from automations.stores import SQLiteStore, open_store

__all__ = ["COMMANDS"]

_recipe_option = click.option(
    "--recipe", "recipe", required=True, help="The recipe whose held runs this decides."
)


def _open(db: Path | None) -> SQLiteStore:
    path = resolve_db(db)
    if not path.exists():
        raise click.UsageError(f"no run database at {path} (pass --db or set AUTOMATIONS_DB)")
    return open_store(path)


def _nothing_held(store: SQLiteStore, recipe: str) -> None:
    others = store.count_by_recipe(RunStatus.HELD)
    click.echo(f"no held runs for recipe {recipe}")
    if others:
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(others.items()))
        click.echo(f"held runs wait for: {listed}")


@click.command()
@_recipe_option
@db_option
@friendly_errors
def approve(recipe: str, db: Path | None) -> None:
    """Release the runs held for RECIPE by its flood_limit: they run (a running runner picks
    them up within a second; otherwise the next start does)."""
    store = _open(db)
    try:
        n = approve_held(store, recipe)
        if not n:
            _nothing_held(store, recipe)
    finally:
        store.close()
    if n:
        click.echo(f"approved {n} held run(s) of {recipe}: they run now")


@click.command()
@_recipe_option
@db_option
@friendly_errors
def discard(recipe: str, db: Path | None) -> None:
    """End the runs held for RECIPE as `discarded`: never sent, kept in the audit."""
    store = _open(db)
    try:
        n = discard_held(store, recipe)
        if not n:
            _nothing_held(store, recipe)
    finally:
        store.close()
    if n:
        click.echo(f"discarded {n} held run(s) of {recipe}: nothing was sent")


COMMANDS = [approve, discard]
