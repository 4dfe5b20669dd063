"""Which provider connections a runner has paused, kept in the store so that others can see it.

A circuit breaker (``automations/breaker.py``) lives in the runner's memory. Its pauses are
also written to the state store (scope ``connection-pauses``, one key per connection, an empty
value once it resumes), so that ``automations status`` and ``automations show`` — separate
processes reading the store alone — say why pending runs are waiting. One write per pause or
resume, never per run: a pause with 100,000 runs queued costs the same as with one.

A runner clears the marks when it starts (its breakers start closed), so a crash while paused
leaves no stale "paused" behind once the service is back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from automations.ports import StateStore

__all__ = ["SCOPE", "Pause", "clear_pauses", "paused_connections", "record_pause"]

SCOPE = "connection-pauses"


@dataclass(frozen=True, slots=True)
class Pause:
    """A paused connection: why (the provider's refusal, masked) and since when (unix s)."""

    connection: str
    reason: str
    since: float | None

    def text(self) -> str:
        return f"the {self.connection} connection is paused: {self.reason}"


def record_pause(store: StateStore, connection: str, pause: Pause | None) -> None:
    """Record that ``connection`` is paused (``pause``) or sends again (``None``)."""
    value = "" if pause is None else json.dumps({"reason": pause.reason, "since": pause.since})
    store.set_state(SCOPE, [(connection, value)])


def paused_connections(store: StateStore) -> dict[str, Pause]:
    """The connections paused as last recorded, by name (``quo``, ``loops``)."""
    pauses = {}
    for name, value in store.all_state(SCOPE).items():
        if not value:
            continue
        try:
            data = json.loads(value)
            pauses[name] = Pause(name, str(data["reason"]), data.get("since"))
        except (ValueError, KeyError, TypeError):  # written by something else: say so plainly
            pauses[name] = Pause(name, "paused (reason unreadable)", None)
    return pauses


def clear_pauses(store: StateStore) -> None:
    """Forget every recorded pause (a runner starting: its breakers are closed)."""
    stale = [(name, "") for name, value in store.all_state(SCOPE).items() if value]
    if stale:
        store.set_state(SCOPE, stale)
