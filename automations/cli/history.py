"""``automations exec``, ``runs`` and ``show``: run one row, read the audit (``replay`` and
``resolve`` are in ``operate``)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from automations.cli import friendly_errors
from automations.cli.preview import parse_row_option, require_recipe
from automations.cli.timeline import run_timeline, runs_table
from automations.connections import Connections, ConnectionSettings, pacing_for
from automations.errors import TableDatabaseError
from automations.execution.executor import Executor, new_run
from automations.execution.pauses import paused_connections
from automations.execution.versions import condition_source
from automations.model import DbTableSpec, Recipe, ScheduleTrigger, TableTrigger
from automations.ports import Store
from automations.records import RunFilter, RunRecord, RunStatus, TriggerKind
from automations.stores import is_postgres_url, open_store
from automations.triggers.table import find_row
from automations.triggers.table_db import connect

__all__ = ["COMMANDS", "db_option", "echo_outcome", "exit_for", "open_existing", "resolve_db"]

db_option = click.option(
    "--db",
    "db",
    metavar="FILE|URL",
    default=None,
    help="The run database: a SQLite file, or a postgresql:// URL "
    "(default: $AUTOMATIONS_DB, else automations.db here).",
)


def resolve_db(db: str | None) -> str:
    """The run database a command uses: ``--db``, else ``$AUTOMATIONS_DB``, else
    ``automations.db`` here. Open it with ``open_store`` (a file or a ``postgresql://`` URL)."""
    return db or os.environ.get("AUTOMATIONS_DB") or "automations.db"


def open_existing(db: str | None) -> Store:
    """The run database, which must exist already (a SQLite file; a PostgreSQL database gets
    its schema on open)."""
    location = resolve_db(db)
    if not is_postgres_url(location) and not Path(location).expanduser().exists():
        raise click.UsageError(f"no run database at {location} (pass --db or set AUTOMATIONS_DB)")
    return open_store(location)


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def run_json(run: RunRecord, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": run.id,
        "recipe": run.recipe,
        "recipe_hash": run.recipe_hash,
        "status": run.status.value,
        "trigger": run.trigger.value,
        "event_key": run.event_key,
        "created_at": _iso(run.created_at),
        "finished_at": _iso(run.finished_at),
        "dry_run": run.dry_run,
        "condition": run.condition,
        "error": run.error,
        "replay_of": run.replay_of,
        "replayed_as": run.replayed_as,
        "steps": [],
    }
    if full:
        out["event"] = run.event
        out["row"] = run.row if run.row is not None else run.event
    for s in run.steps:
        step: dict[str, Any] = {
            "index": s.index,
            "id": s.step_id,
            "action": s.action,
            "status": s.status.value,
            "http_status": s.http_status,
            "attempts": s.attempts,
            "duration_ms": None if s.duration_ms is None else round(s.duration_ms, 2),
            "error": s.error,
            "resolution": s.resolution,
        }
        if full:
            step["idempotency_key"] = s.idempotency_key
            step["request"] = s.request
            step["response"] = s.response_body
        out["steps"].append(step)
    return out


def _parse_since(value: str | None) -> float | None:
    """``2026-11-01``, an ISO timestamp, or a duration back from now: ``90m``, ``24h``, ``7d``."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[:-1].isdigit() and value[-1] in units:
        return time.time() - int(value[:-1]) * units[value[-1]]
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use a date (2026-11-01), an ISO time, or a duration like 24h or 7d"
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def echo_outcome(run: RunRecord) -> None:
    click.echo(
        f"run {run.id} {run.recipe}: {run.status.value}" + (" (dry run)" if run.dry_run else "")
    )
    for s in run.steps:
        status = f" HTTP {s.http_status}" if s.http_status else ""
        click.echo(f"  {s.index + 1}. {s.step_id} {s.action}: {s.status.value}{status}")
        if s.request and run.dry_run:
            req = s.request
            click.echo(f"     {req.get('method')} {req.get('url')}")
            click.echo(f"     {json.dumps(req.get('body'), ensure_ascii=False)}")
        if s.error:
            click.echo(f"     {s.error}")
    if run.error and not run.steps:
        click.echo(f"  {run.error}")


async def _execute(store: Store, run: RunRecord, recipe: Any, dry_run: bool) -> RunRecord:
    settings = ConnectionSettings.from_env(os.environ)
    async with Connections(settings, pacing=pacing_for(store)) as conns:
        executor = Executor(store, conns, os.environ)
        stored, _ = store.enqueue(run)
        return await executor.execute(stored, recipe, dry_run=dry_run)


def exit_for(run: RunRecord) -> None:
    sys.exit(0 if run.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED) else 1)


@click.command("exec")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--row", "row", default=None, help="The event as a JSON object, or @file.json.")
@click.option(
    "--key",
    "key",
    default=None,
    help="Run the row of the recipe's table whose key column has this value (instead of --row).",
)
@click.option("--dry-run", is_flag=True, help="Render and record, send nothing.")
@db_option
@friendly_errors
def exec_command(
    recipe: Path, row: str | None, key: str | None, dry_run: bool, db: str | None
) -> None:
    """Run RECIPE for one row now (Clay's "run this row") and print the outcome: the row given
    with --row, or the one with --key read from the recipe's table.

    Exit status 0 when the run succeeded or was skipped by its condition, 1 otherwise.
    """
    if (row is None) == (key is None):
        raise click.UsageError("give the row: --row JSON, or --key VALUE to read it from the table")
    loaded = require_recipe(recipe)
    assert loaded.recipe is not None
    if key is not None:
        event = _table_row(loaded.recipe, key)
        event_key = f"{key}@{time.time_ns():016x}"  # runs --key finds it with the row's runs
    else:
        assert row is not None
        event = parse_row_option(row)
        event_key = f"manual:{time.time_ns()}"
    store = open_store(resolve_db(db))
    try:
        run = new_run(loaded.recipe.name, TriggerKind.MANUAL, event_key, event)
        final = asyncio.run(_execute(store, run, loaded.recipe, dry_run))
    finally:
        store.close()
    echo_outcome(final)
    exit_for(final)


def _table_row(recipe: Recipe, key: str) -> dict[str, Any]:
    trigger = recipe.trigger
    spec = trigger.table if isinstance(trigger, TableTrigger | ScheduleTrigger) else None
    if spec is None:
        raise click.UsageError(
            f"recipe {recipe.name} has no table to read a row from (its trigger is "
            f"{trigger.kind}); pass the event with --row"
        )
    if isinstance(spec, DbTableSpec):
        return _database_row(spec, key)
    try:
        found = find_row(spec, key)
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"cannot read {spec.path}: {exc}") from exc
    if found is None:
        raise click.UsageError(f'no row of {spec.path.name} has {spec.key} "{key}"')
    return found


def _database_row(spec: DbTableSpec, key: str) -> dict[str, Any]:
    conn = connect(spec.database, os.environ, table=spec.table, query=spec.query)
    try:
        found = conn.find(spec.key, key)
    except TableDatabaseError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        conn.close()
    if found is None:
        raise click.UsageError(f'no row of {conn.name} has {spec.key} "{key}"')
    if spec.columns is not None:
        return {name: found.get(name) for name in spec.columns}
    return found


@click.command()
@db_option
@click.option("--recipe", default=None, help="Only runs of this recipe.")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), default=None)
@click.option("--since", default=None, help="A date, ISO time, or a duration back: 24h, 7d.")
@click.option(
    "--until",
    default=None,
    help="Only runs created before this: a date, ISO time, or a duration back (as --since).",
)
@click.option(
    "--key",
    default=None,
    help="Only the runs of this row or event: an e-mail, a phone number, an event id (the "
    "table's key column or the webhook's event id).",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@friendly_errors
def runs(
    db: str | None,
    recipe: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    key: str | None,
    limit: int,
    fmt: str,
) -> None:
    """The run history, newest first (by the time each run was created): key, status, how long
    each took, and the first line of its error."""
    store = open_existing(db)
    try:
        flt = RunFilter(
            recipe=recipe,
            status=RunStatus(status) if status else None,
            since=_parse_since(since),
            until=_parse_since(until),
            limit=limit,
            key=key,
        )
        found = store.list_runs(flt)
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps([run_json(r) for r in found], indent=2, ensure_ascii=False))
        return
    click.echo("\n".join(runs_table(found)))


@click.command()
@click.argument("run_id")
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a timeline for people; json: the full record (event, row, requests, responses).",
)
@friendly_errors
def show(run_id: str, db: str | None, fmt: str) -> None:
    """One run as it happened: the event, the condition and its result, each step's request,
    status, response and duration. RUN_ID may be a prefix."""
    store = open_existing(db)
    try:
        run = store.get_run(run_id)
        decisions = store.audit_log(run.id)
        condition = condition_source(store, run) if fmt == "text" else None
        waiting = _waiting_for(store, run) if fmt == "text" else []
    finally:
        store.close()
    if fmt == "text":
        click.echo(run_timeline(run, condition, decisions, waiting))
        return
    out = run_json(run, full=True)
    out["audit"] = [
        {
            "at": _iso(e.at),
            "actor": e.actor,
            "action": e.action,
            "step": e.step_index,
            "detail": e.detail,
        }
        for e in decisions
    ]
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


def _waiting_for(store: Store, run: RunRecord) -> list[str]:
    """For a pending run: the connections a runner recorded as paused, and since when."""
    if run.status is not RunStatus.PENDING:
        return []
    return [
        p.text() + (f" (since {_iso(p.since)})" if p.since is not None else "")
        for p in paused_connections(store).values()
    ]


COMMANDS = [exec_command, runs, show]
