"""Replaying a run: a decision a person takes once, on the newest run of a chain.

A replay is a new run (``replay_of`` points at the original, the original's ``replayed_as`` at the
replay) that runs the steps of the original that did not succeed; the steps that did are copied
from the original and never sent again, so the history of what happened first is kept as it was.

What keeps a customer from being texted twice:

- a run is replayed at most once: a second ``replay`` of it is refused and names the replay
  ("replayed as X; replay X if it failed"). The check and the mark are one transaction, and the
  replay's event key (``<key>#replay``) is unique, so two people replaying at once get one replay;
- a run with a step whose outcome is ``unknown`` is not replayed until a person has recorded what
  happened (``resolve``: ``sent`` or ``not-sent``);
- a run still ``pending`` or ``running`` is not replayed: the runner executes or resumes it;
- a replayed Loops event is sent with the original step's ``Idempotency-Key``, so Loops itself
  answers 409 ("already accepted") to an event the original delivered after all.

A ``--dry-run`` replay goes through the same checks, sends nothing and marks nothing: it is a new
run pointing back at the original, under its own event key.

These are the functions the CLI calls (and any other console): the decision is written once, here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from automations.errors import RefusedError, StoreError
from automations.execution.executor import Executor, new_run
from automations.model import Recipe
from automations.ports import RunStore, Store
from automations.records import AuditEntry, RunRecord, RunStatus, StepRecord, StepStatus

__all__ = ["REPLAY_SUFFIX", "check_replayable", "record_replay", "replay"]

#: A replay's event key is its original's plus this: one replay per run, enforced by the store.
REPLAY_SUFFIX = "#replay"

_KEEP = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


def check_replayable(store: RunStore, run: RunRecord) -> None:
    """Raise ``RefusedError`` (saying what to do instead) unless ``run`` may be replayed now."""
    if run.replayed_as is not None:
        status = _status_of(store, run.replayed_as)
        raise RefusedError(
            f"run {run.id} was replayed already: replayed as {run.replayed_as}{status}; "
            f"replay {run.replayed_as} if it failed",
            run_id=run.replayed_as,
        )
    if run.status is RunStatus.HELD:
        raise RefusedError(
            f"run {run.id} is held by its recipe's flood_limit: "
            f"`automations approve --recipe {run.recipe}` runs it, `discard` drops it"
        )
    if run.status is RunStatus.DISCARDED:
        raise RefusedError(f"run {run.id} was discarded by an operator; it is never sent")
    if run.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED):
        raise RefusedError(
            f"run {run.id} {run.status.value}: nothing to replay (a failed run is replayed, "
            "an unknown one after `automations resolve`)"
        )
    if run.status in (RunStatus.PENDING, RunStatus.RUNNING):
        raise RefusedError(
            f"run {run.id} is {run.status.value}: the runner executes it (or resumes it on its "
            "next start); replay it if it ends failed or unknown"
        )
    for step in run.steps:
        if step.status is StepStatus.UNKNOWN:
            raise RefusedError(
                f"run {run.id}: step {step.index + 1} ({step.step_id}, {step.action}) may or may "
                "not have been sent, and a replay would send it again. Check with the provider, "
                f"then record what happened: `automations resolve {run.id} {step.step_id} sent` "
                f"(it went out: never sent again) or `... {step.step_id} not-sent` (a replay "
                "sends it); then replay"
            )


async def replay(
    executor: Executor,
    original: RunRecord,
    recipe: Recipe,
    *,
    dry_run: bool = False,
    actor: str = "unknown",
    clock: Callable[[], float] = time.time,
) -> RunRecord:
    """Run the steps of ``original`` that did not succeed, as a new run; returns it, finished.

    Raises ``RefusedError`` when ``check_replayable`` does (also when someone else replayed the
    run in the meantime). A real replay marks the original and records ``actor``'s decision in
    the audit, in the same transaction as the new run.
    """
    stored = record_replay(executor.store, original, dry_run=dry_run, actor=actor, clock=clock)
    return await executor.execute(stored, recipe, dry_run=dry_run)


def record_replay(
    store: RunStore,
    original: RunRecord,
    *,
    dry_run: bool = False,
    actor: str = "unknown",
    clock: Callable[[], float] = time.time,
) -> RunRecord:
    """Record the replay of ``original`` as a ``pending`` run (carrying the steps that
    succeeded) without executing it; returns it. ``replay`` executes it at once; a runner
    hands it to its dispatcher (the console), which executes it in its lane like any run.

    The same checks, marks and audit as ``replay``."""
    check_replayable(store, original)
    now = clock()
    key = original.event_key + REPLAY_SUFFIX
    if dry_run:
        key += f"-dry-run-{time.time_ns()}"
    run = replace(
        new_run(original.recipe, original.trigger, key, original.event, now=now),
        replay_of=original.id,
    )
    run = replace(run, steps=tuple(_carried(original, run.id)))
    return _record(store, original, run, dry_run=dry_run, actor=actor, now=now)


def _carried(original: RunRecord, run_id: str) -> list[StepRecord]:
    """The original's steps the replay starts with: those that succeeded (kept as they were),
    and, for a step to send again that had an idempotency key, a pending step carrying that key
    (the executor sends with it, so the provider can tell a request it has seen)."""
    out = []
    for step in original.steps:
        if step.status in _KEEP:
            out.append(replace(step, run_id=run_id))
        elif step.idempotency_key is not None:
            out.append(
                StepRecord(
                    run_id,
                    step.index,
                    step.step_id,
                    step.action,
                    idempotency_key=step.idempotency_key,
                )
            )
    return out


def _record(
    store: RunStore, original: RunRecord, run: RunRecord, *, dry_run: bool, actor: str, now: float
) -> RunRecord:
    if not isinstance(store, Store):  # a bare RunStore: no transactions, no audit
        stored, _ = store.enqueue(run)
        if not dry_run:
            store.update_run(original.id, replayed_as=stored.id)
        return stored
    with store.transaction():
        # read again inside the transaction (it holds the write lock): another replay of the
        # same run, from another process, may have been recorded since the first check
        check_replayable(store, store.get_run(original.id))
        stored, new = store.enqueue(run)
        if not new:
            raise RefusedError(
                f"run {original.id} was replayed already: replayed as {stored.id}; "
                f"replay {stored.id} if it failed",
                run_id=stored.id,
            )
        if not dry_run:
            store.update_run(original.id, replayed_as=stored.id)
            store.add_audit(
                AuditEntry(
                    at=now,
                    actor=actor,
                    action="replay",
                    run_id=original.id,
                    detail={"replay": stored.id},
                )
            )
    return stored


def _status_of(store: RunStore, run_id: str) -> str:
    try:
        status = store.get_run(run_id).status.value
    except StoreError:  # pruned: the id alone still says what to do
        return ""
    return f" ({status})"
