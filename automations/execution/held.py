"""Held runs: what a person decides about runs a flood brake stopped.

A table scan that would enqueue more runs than the recipe's ``flood_limit`` records them ``held``
(``runner/sources.py``); nothing executes them until a person calls one of these (``automations
approve`` / ``discard``, and any console later: the same functions, never written twice):

- ``approve``: the recipe's held runs become ``pending``; a running runner picks them up within a
  second (it watches ``RELEASED``), or the next start resumes them.
- ``discard``: they end ``discarded``, with who-decided-when in ``error``; never sent, kept in the
  audit like any finished run.

Both act on every held run of one recipe at once and are safe to repeat (the second call finds
nothing held and returns 0).
"""

from __future__ import annotations

import time

from automations.ports import Store
from automations.records import RunStatus

__all__ = ["DISCARD_NOTE", "RELEASED", "approve", "discard", "released_marker"]

#: The state ``(scope, key)`` that ``approve`` bumps, in the same transaction, so that a runner
#: in another process notices released runs with one cheap read.
RELEASED = ("operator", "released")

#: What a discarded run's ``error`` says.
DISCARD_NOTE = "discarded by an operator (automations discard); never sent"


def approve(store: Store, recipe: str, *, now: float | None = None) -> int:
    """Release every held run of ``recipe`` (to ``pending``); how many were released."""
    with store.transaction():
        n = store.end_hold(recipe, RunStatus.PENDING, now=_now(now))
        if n:
            marker = released_marker(store)
            store.set_state(RELEASED[0], [(RELEASED[1], str(marker + 1))])
    return n


def discard(store: Store, recipe: str, *, now: float | None = None) -> int:
    """End every held run of ``recipe`` as ``discarded`` (never sent); how many were ended."""
    return store.end_hold(recipe, RunStatus.DISCARDED, now=_now(now), error=DISCARD_NOTE)


def released_marker(store: Store) -> int:
    """How many ``approve`` calls released something in this store so far."""
    raw = store.get_state(*RELEASED)
    return int(raw) if raw and raw.isdigit() else 0


def _now(now: float | None) -> float:
    return time.time() if now is None else now
