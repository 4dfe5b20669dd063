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
from automations.connections import Connections, ConnectionSettings
from automations.execution.executor import Executor, new_run
from automations.records import RunFilter, RunRecord, RunStatus, TriggerKind
from automations.stores import SQLiteStore, open_store

__all__ = ["COMMANDS", "db_option", "resolve_db"]

db_option = click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The run database (default: $AUTOMATIONS_DB, else automations.db here).",
)


def resolve_db(db: Path | None) -> Path:
    return db or Path(os.environ.get("AUTOMATIONS_DB") or "automations.db")


def _open_existing(db: Path | None) -> SQLiteStore:
    path = resolve_db(db)
    if not path.exists():
        raise click.UsageError(f"no run database at {path} (pass --db or set AUTOMATIONS_DB)")
    return open_store(path)


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


def status_text(run: RunRecord) -> str:
    """The status as the table shows it: a dry run says so."""
    return run.status.value + (" (dry run)" if run.dry_run else "")


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


def _echo_outcome(run: RunRecord) -> None:
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


async def _execute(store: SQLiteStore, run: RunRecord, recipe: Any, dry_run: bool) -> RunRecord:
    async with Connections(ConnectionSettings.from_env(os.environ)) as conns:
        executor = Executor(store, conns, os.environ)
        stored, _ = store.enqueue(run)
        return await executor.execute(stored, recipe, dry_run=dry_run)


def _exit_for(run: RunRecord) -> None:
    sys.exit(0 if run.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED) else 1)


@click.command("exec")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--row", "row", required=True, help="The event as JSON, or @file.json.")
@click.option("--dry-run", is_flag=True, help="Render and record, send nothing.")
@db_option
@friendly_errors
def exec_command(recipe: Path, row: str, dry_run: bool, db: Path | None) -> None:
    """Run RECIPE for one row now (Clay's "run this row") and print the outcome.

    Exit status 0 when the run succeeded or was skipped by its condition, 1 otherwise.
    """
    event = parse_row_option(row)
    loaded = require_recipe(recipe)
    assert loaded.recipe is not None
    store = open_store(resolve_db(db))
    try:
        run = new_run(loaded.recipe.name, TriggerKind.MANUAL, f"manual:{time.time_ns()}", event)
        final = asyncio.run(_execute(store, run, loaded.recipe, dry_run))
    finally:
        store.close()
    _echo_outcome(final)
    _exit_for(final)


@click.command()
@db_option
@click.option("--recipe", default=None, help="Only runs of this recipe.")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), default=None)
@click.option("--since", default=None, help="A date, ISO time, or a duration back: 24h, 7d.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@friendly_errors
def runs(
    db: Path | None, recipe: str | None, status: str | None, since: str | None, limit: int, fmt: str
) -> None:
    """The run history, newest first."""
    store = _open_existing(db)
    try:
        flt = RunFilter(
            recipe=recipe,
            status=RunStatus(status) if status else None,
            since=_parse_since(since),
            limit=limit,
        )
        found = store.list_runs(flt)
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps([run_json(r) for r in found], indent=2, ensure_ascii=False))
        return
    click.echo(
        f"{'ID':<12}  {'CREATED (UTC)':<19}  {'RECIPE':<24}  {'TRIGGER':<8}  {'STATUS':<19}  STEPS"
    )
    for r in found:
        steps = " ".join(f"{s.action.split('.')[-1]}:{s.status.value}" for s in r.steps)
        created = (_iso(r.created_at) or "")[:19]
        chain = (f"  replay of {r.replay_of[:12]}" if r.replay_of else "") + (
            f"  replayed as {r.replayed_as[:12]}" if r.replayed_as else ""
        )
        click.echo(
            f"{r.id[:12]:<12}  {created:<19}  {r.recipe[:24]:<24}  "
            f"{r.trigger.value:<8}  {status_text(r):<19}  {steps}{chain}"
        )
    if not found:
        click.echo("(no runs)")


@click.command()
@click.argument("run_id")
@db_option
@friendly_errors
def show(run_id: str, db: Path | None) -> None:
    """One run with every step's request and response (as JSON). RUN_ID may be a prefix."""
    store = _open_existing(db)
    try:
        run = store.get_run(run_id)
        decisions = store.audit_log(run.id)
    finally:
        store.close()
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


COMMANDS = [exec_command, runs, show]
