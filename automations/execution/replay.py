"""Replaying a run: its failed or unknown steps again, never the ones that succeeded.

A replay is a new run (``replay_of`` points at the original) whose finished steps are copied from
the original, so the history of what happened first is kept as it was.
"""

from __future__ import annotations

from dataclasses import replace

from automations.errors import StoreError
from automations.execution.executor import Executor, new_run
from automations.model import Recipe
from automations.records import RunRecord, RunStatus, StepStatus

__all__ = ["replay"]

_KEEP = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


async def replay(
    executor: Executor, original: RunRecord, recipe: Recipe, *, dry_run: bool = False
) -> RunRecord:
    """Run the steps of ``original`` that did not succeed, as a new run."""
    if original.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED):
        raise StoreError(
            f"run {original.id} {original.status.value}; only failed, unknown or interrupted "
            "runs can be replayed"
        )
    if original.status is RunStatus.HELD:
        raise StoreError(
            f"run {original.id} is held by its recipe's flood_limit: "
            f"`automations approve --recipe {original.recipe}` runs it, `discard` drops it"
        )
    if original.status is RunStatus.DISCARDED:
        raise StoreError(f"run {original.id} was discarded by an operator; it is never sent")
    store = executor.store
    n = 1 + sum(1 for r in _replays(executor, original))
    run = replace(
        new_run(
            original.recipe, original.trigger, f"{original.event_key}#replay-{n}", original.event
        ),
        replay_of=original.id,
    )
    stored, _ = store.enqueue(run)
    for step in original.steps:
        if step.status in _KEEP:
            store.put_step(replace(step, run_id=stored.id))
    store.update_run(original.id, error=_note(original, stored.id))
    return await executor.execute(stored, recipe, dry_run=dry_run)


def _replays(executor: Executor, original: RunRecord) -> list[RunRecord]:
    key = f"{original.event_key}#replay-"
    out = []
    n = 1
    while (r := executor.store.find_run(original.recipe, f"{key}{n}")) is not None:
        out.append(r)
        n += 1
    return out


def _note(original: RunRecord, replay_id: str) -> str:
    base = original.error or ""
    return f"{base} (replayed as {replay_id})".strip()
