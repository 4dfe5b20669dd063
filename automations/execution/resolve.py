"""Resolving an ``unknown`` step: a person says what happened to a request that may have left.

A step is ``unknown`` when a request that is not safe to repeat (a Quo SMS or contact) may or may
not have been processed. Nothing sends it again until a person has checked with the provider and
recorded the answer:

- ``sent``: it went out. The step reads ``succeeded`` (``resolution: sent``) and is never sent:
  a replay copies it. The run is ``succeeded`` when that was its last step, else ``failed``
  with the remaining steps left for a replay.
- ``not-sent``: it did not. The step reads ``failed`` (``resolution: not-sent``) and the run
  ``failed``: a replay sends it.

Either way the decision is audited (who, when, what) in the same transaction. These are the
functions the CLI calls (and any other console), written once.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from automations.errors import RefusedError
from automations.ports import Store
from automations.records import AuditEntry, RunRecord, RunStatus, StepRecord, StepStatus

__all__ = ["OUTCOMES", "Outcome", "current_actor", "find_step", "resolve"]

Outcome = Literal["sent", "not-sent"]
#: What a person can say about an unknown step.
OUTCOMES: tuple[Outcome, ...] = ("sent", "not-sent")


def current_actor() -> str:
    """Who is acting, for the audit: the operating-system user (``unknown`` if it has none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no USER/LOGNAME (a bare container)
        return "unknown"


def find_step(run: RunRecord, step: str) -> StepRecord:
    """The step of ``run`` named ``step``: its id (``sms``) or its number from 1 (``2``)."""
    for s in run.steps:
        if s.step_id == step:
            return s
    if step.isdigit():
        for s in run.steps:
            if s.index == int(step) - 1:
                return s
    listed = ", ".join(f"{s.index + 1} ({s.step_id})" for s in run.steps) or "none"
    raise RefusedError(f"run {run.id} has no step {step!r}; its steps: {listed}")


def resolve(
    store: Store,
    run_id: str,
    step: str,
    outcome: Outcome,
    *,
    actor: str,
    total_steps: int | None = None,
    note: str | None = None,
    clock: Callable[[], float] = time.time,
) -> RunRecord:
    """Record what happened to the ``unknown`` step ``step`` of run ``run_id``; returns the run.

    ``total_steps`` is how many actions the recipe version that ran has (``None`` if not known):
    a step resolved ``sent`` ends the run ``succeeded`` only when it was the last one.
    Raises ``RefusedError`` when the step is not ``unknown`` (an outcome that is known is never
    overwritten) or the run was replayed already.
    """
    if outcome not in OUTCOMES:
        raise RefusedError(f"{outcome!r} is not an outcome: say sent or not-sent")
    now = clock()
    with store.transaction():
        run = store.get_run(run_id)
        target = find_step(run, step)
        if target.status is not StepStatus.UNKNOWN:
            how = f" (resolved by hand: {target.resolution})" if target.resolution else ""
            raise RefusedError(
                f"run {run.id}: step {target.index + 1} ({target.step_id}) is "
                f"{target.status.value}{how}, not unknown: only an unknown outcome is resolved"
            )
        if run.replayed_as is not None:
            raise RefusedError(
                f"run {run.id} was replayed as {run.replayed_as}: its steps are decided there"
            )
        if outcome == "sent":
            resolved = replace(target, status=StepStatus.SUCCEEDED, resolution="sent")
            last = total_steps is not None and target.index + 1 >= total_steps
            status = RunStatus.SUCCEEDED if last else RunStatus.FAILED
            error = (
                None
                if last
                else f"{target.step_id} was sent (resolved by {actor}); the steps after it "
                f"have not run: replay {run.id} to run them"
            )
        else:
            resolved = replace(target, status=StepStatus.FAILED, resolution="not-sent")
            status = RunStatus.FAILED
            error = (
                f"{target.step_id} was not sent (resolved by {actor}): replay {run.id} to send it"
            )
        store.put_step(resolved)
        store.update_run(run.id, status=status, error=error)
        detail: dict[str, object] = {"step": target.step_id, "outcome": outcome}
        if note:
            detail["note"] = note
        store.add_audit(
            AuditEntry(
                at=now,
                actor=actor,
                action="resolve",
                run_id=run.id,
                step_index=target.index,
                detail=detail,
            )
        )
    return store.get_run(run.id)
