"""``automations replay`` and ``automations resolve``: the decisions a person takes on a run.

The decisions themselves (when a replay is refused, what resolving a step records) live in
``automations.execution.replay`` and ``automations.execution.resolve``; this is only their
command line.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from automations.cli import friendly_errors
from automations.cli.history import db_option, echo_outcome, exit_for, open_existing
from automations.cli.preview import require_recipe
from automations.connections import Connections, ConnectionSettings, pacing_for
from automations.errors import StoreError
from automations.execution.executor import Executor
from automations.execution.replay import check_replayable
from automations.execution.replay import replay as replay_run
from automations.execution.resolve import OUTCOMES, Outcome, current_actor, resolve
from automations.execution.versions import load_version
from automations.records import RunRecord

__all__ = ["COMMANDS"]

by_option = click.option(
    "--by",
    "actor",
    default=None,
    help="Who takes the decision, for the audit (default: your user name).",
)


@click.command()
@click.argument("run_id")
@db_option
@click.option("--dry-run", is_flag=True, help="Render and record, send nothing, mark nothing.")
@click.option(
    "--recipe",
    "recipe_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Replay with this recipe file.",
)
@by_option
@friendly_errors
def replay(
    run_id: str, db: str | None, dry_run: bool, recipe_file: Path | None, actor: str | None
) -> None:
    """Run the failed steps of a failed run again, as a new run; steps that succeeded are never
    sent again. A run is replayed once: replay the newest run of the chain. A run with an
    `unknown` step is replayed only after `automations resolve` says what happened to it."""
    store = open_existing(db)
    try:
        original = store.get_run(run_id)
        check_replayable(store, original)  # refuse before needing the recipe or the keys
        if recipe_file is not None:
            recipe = require_recipe(recipe_file).recipe
        else:
            recipe = load_version(store, original, os.environ)
        assert recipe is not None

        async def go() -> RunRecord:
            settings = ConnectionSettings.from_env(os.environ)
            async with Connections(settings, pacing=pacing_for(store)) as conns:
                return await replay_run(
                    Executor(store, conns, os.environ),
                    original,
                    recipe,
                    dry_run=dry_run,
                    actor=actor or current_actor(),
                )

        final = asyncio.run(go())
    finally:
        store.close()
    click.echo(f"replay of {original.id}:")
    echo_outcome(final)
    exit_for(final)


@click.command("resolve")
@click.argument("run_id")
@click.argument("step")
@click.argument("outcome", type=click.Choice(OUTCOMES))
@db_option
@by_option
@click.option("--note", default=None, help="Why, for the audit (e.g. where you checked).")
@friendly_errors
def resolve_command(
    run_id: str, step: str, outcome: Outcome, db: str | None, actor: str | None, note: str | None
) -> None:
    """Say what happened to a step whose outcome is `unknown` (it may or may not have been sent):
    `sent` records it as succeeded by hand (it is never sent again), `not-sent` lets a replay send
    it. STEP is the step's id or its number (1 = the first). The decision is audited."""
    store = open_existing(db)
    try:
        run = store.get_run(run_id)
        try:  # how many steps the version that ran has: is the resolved step the last?
            ran = load_version(store, run, os.environ, prefer_current=False)
            total: int | None = len(ran.actions)
        except StoreError:
            total = None
        who = actor or current_actor()
        final = resolve(store, run.id, step, outcome, actor=who, total_steps=total, note=note)
    finally:
        store.close()
    click.echo(f"run {final.id}: step {step} resolved as {outcome}; run {final.status.value}")
    if final.error:
        click.echo(f"  {final.error}")


COMMANDS = [replay, resolve_command]
