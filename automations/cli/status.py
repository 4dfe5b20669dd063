"""``automations status``: what is waiting, how fast it goes out, when it will be done."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import click

from automations.cli import friendly_errors
from automations.cli.history import db_option, open_existing, resolve_db
from automations.execution.backlog import backlog_table, measure_backlog
from automations.recipes.compiler import load_directory
from automations.stores import is_postgres_url
from automations.stores.sqlite_inbox import waiting_in_inbox

__all__ = ["COMMANDS"]


@click.command()
@click.argument(
    "directory",
    required=False,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@db_option
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@friendly_errors
def status(directory: Path | None, db: str | None, fmt: str) -> None:
    """Per recipe and per connection: runs and requests queued, steps sent in the last minute,
    and when the backlog drains at that pace. With DIRECTORY (the recipes), each waiting run
    counts one request per action on its connection; without, the actions seen in the last
    minute stand in."""
    actions = None
    if directory is not None:
        actions = {
            r.recipe.name: [a.kind for a in r.recipe.actions]
            for r in load_directory([directory], {})
            if r.recipe is not None
        }
    store = open_existing(db)
    try:
        backlog = measure_backlog(store, time.time(), actions)
    finally:
        store.close()
    # on SQLite, webhooks the intake process recorded that the runner has not moved into
    # ``runs`` yet (a stopped runner moves them when it starts again)
    location = resolve_db(db)
    inbox = 0 if is_postgres_url(location) else waiting_in_inbox(Path(location).expanduser())
    if fmt == "json":
        click.echo(json.dumps({**asdict(backlog), "inbox": inbox}, indent=2))
        return
    click.echo("\n".join(backlog_table(backlog)))
    if inbox:
        click.echo(
            f"\n{inbox:,} webhook event(s) recorded and answered, not yet moved into runs "
            "(the runner moves them as it runs; none is lost while it is stopped)"
        )


COMMANDS = [status]
