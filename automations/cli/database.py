"""``automations db migrate`` and ``db copy``: create or upgrade a run store's schema, and move
a SQLite history into PostgreSQL; ``db notify-sql``: the trigger that wakes a PostgreSQL table
trigger early."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click

from automations.cli import friendly_errors
from automations.cli.history import db_option, resolve_db
from automations.errors import StoreError
from automations.stores import SQLiteStore, display_location, is_postgres_url, open_store
from automations.stores.sqlite import VacuumChange

__all__ = ["COMMANDS"]


@click.group("db")
def db_group() -> None:
    """The run database itself: create or upgrade its schema, copy a history into PostgreSQL;
    the SQL that makes a PostgreSQL table wake its recipes at once."""


@db_group.command("migrate")
@db_option
@friendly_errors
def migrate_command(db: str | None) -> None:
    """Create the run store's schema, or bring it up to this version's (every command and the
    runner do it too when they open the store; this does it ahead, e.g. before a deploy)."""
    location = resolve_db(db)
    shown = display_location(location)
    vacuum: VacuumChange | None = None
    if is_postgres_url(location):
        import psycopg

        from automations.stores.postgres import error_text, migrate

        try:
            with psycopg.connect(location, autocommit=True, connect_timeout=10) as conn:
                before, after = migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open run store {shown}: {error_text(exc, location)}") from exc
    else:
        before = _sqlite_version(Path(location).expanduser())
        store = open_store(location)
        try:
            assert isinstance(store, SQLiteStore)
            vacuum = store.enable_incremental_vacuum()
        finally:
            store.close()
        after = _sqlite_version(Path(location).expanduser())
    if before == after:
        click.echo(f"{shown}: schema version {after}, up to date")
    elif before == 0:
        click.echo(f"{shown}: schema created (version {after})")
    else:
        click.echo(f"{shown}: schema upgraded from version {before} to {after}")
    if vacuum is not None:
        _echo_vacuum(shown, vacuum)


def _echo_vacuum(shown: str, change: VacuumChange) -> None:
    """What became of the file's space when runs are pruned (``enable_incremental_vacuum``)."""
    if change is VacuumChange.DONE:
        click.echo(f"{shown}: rewritten once to give space back when runs are pruned")
    elif change is VacuumChange.NO_SPACE:
        raise StoreError(
            f"{shown} was not rewritten to give space back when runs are pruned: the disk "
            "needs twice its size free; free some space and run db migrate again"
        )
    elif change is VacuumChange.BUSY:
        raise StoreError(
            f"{shown} was not rewritten to give space back when runs are pruned: another "
            "process has it open; stop the runner and run db migrate again"
        )


def _sqlite_version(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open run store {path}: {exc}") from exc


@db_group.command("copy")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite run database to copy (it is only read).",
)
@click.option("--to", "destination", required=True, help="The PostgreSQL database: a URL.")
@friendly_errors
def copy_command(source: Path, destination: str) -> None:
    """Copy a SQLite run database's whole history (runs, steps, trigger state, recipe versions,
    audit) into PostgreSQL. Safe to run again: it adds only what is not there yet. Stop the
    runner first, so that nothing is recorded in the file after it is copied."""
    if not is_postgres_url(destination):
        raise click.UsageError(
            f"--to must be a postgresql:// URL, not {destination} (the copy moves a SQLite "
            "history into PostgreSQL)"
        )
    if not source.exists():
        raise click.UsageError(f"no run database at {source}")
    from automations.stores.transfer import copy_sqlite_to_postgres

    counts = copy_sqlite_to_postgres(source, destination)
    for line in counts.lines():
        click.echo(line)
    click.echo(f"copied {source} to {display_location(destination)}")


@db_group.command("notify-sql")
@click.argument("table")
def notify_sql_command(table: str) -> None:
    """Print the SQL of a trigger that makes PostgreSQL TABLE (``schema.table`` allowed) notify
    the runner as soon as rows are inserted or updated (``NOTIFY automations_tables``, once per
    statement). Run it once as the table's owner, e.g. ``automations db notify-sql leads | psql
    "$CRM_DATABASE_URL"``. Recipes reading TABLE then see changes within a moment instead of at
    their next poll; polling goes on and still guarantees every change is seen."""
    from automations.triggers.table_db import notify_sql

    click.echo(notify_sql(table), nl=False)


COMMANDS = [db_group]
