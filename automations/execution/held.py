"""Held runs: what a person decides about runs a flood brake stopped.

A table scan that would enqueue more runs than the recipe's ``flood_limit`` records them ``held``
(``runner/sources.py``); nothing executes them until a person calls one of these (``automations
approve`` / ``discard``, and any console later: the same functions, never written twice):

- ``approve``: the recipe's held runs become ``pending``; a running runner picks them up within a
  second (it watches ``DECIDED``), or the next start resumes them.
- ``discard``: they end ``discarded``, with who-decided-when in ``error``; never sent, kept in the
  audit like any finished run.

Both act on every held run of one recipe at once and are safe to repeat (the second call finds
nothing held and returns 0).
"""

from __future__ import annotations

import time

from automations.execution.resolve import current_actor
from automations.ports import Store
from automations.records import AuditEntry, RunStatus

__all__ = ["DECIDED", "DISCARD_NOTE", "approve", "decisions", "discard"]

#: The state ``(scope, key)`` that ``approve`` and ``discard`` bump in the same transaction, so
#: that a runner in another process notices a decision with one cheap read.
DECIDED = ("operator", "decided")

#: What a discarded run's ``error`` says.
DISCARD_NOTE = "discarded by an operator (automations discard); never sent"


def approve(
    store: Store, recipe: str, *, now: float | None = None, actor: str | None = None
) -> int:
    """Release every held run of ``recipe`` (to ``pending``); how many were released.
    ``actor`` is who decided, for the audit (default: the operating-system user)."""
    return _decide(store, recipe, RunStatus.PENDING, now, None, actor)


def discard(
    store: Store, recipe: str, *, now: float | None = None, actor: str | None = None
) -> int:
    """End every held run of ``recipe`` as ``discarded`` (never sent); how many were ended."""
    return _decide(store, recipe, RunStatus.DISCARDED, now, DISCARD_NOTE, actor)


def decisions(store: Store) -> int:
    """How many ``approve`` / ``discard`` calls changed something in this store so far."""
    raw = store.get_state(*DECIDED)
    return int(raw) if raw and raw.isdigit() else 0


def _decide(
    store: Store,
    recipe: str,
    status: RunStatus,
    now: float | None,
    note: str | None,
    actor: str | None,
) -> int:
    at = time.time() if now is None else now
    with store.transaction():
        n = store.end_hold(recipe, status, now=at, error=note)
        if n:
            store.set_state(DECIDED[0], [(DECIDED[1], str(decisions(store) + 1))])
            # the decision itself, beside replay and resolve: who ended which holds, and when
            action = "approve" if status is RunStatus.PENDING else "discard"
            detail = {"recipe": recipe, "runs": n}
            store.add_audit(AuditEntry(at, actor or current_actor(), action, detail=detail))
    return n
