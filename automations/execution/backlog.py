"""How much is waiting, how fast it goes out, and when it will be done: ``automations status``
(the runner's own progress line is ``progress.py``).

Read from the store alone (any process can ask): the runs waiting per recipe, the steps that
ended in the last minute, and from those two an estimate of when each backlog drains. Per
connection (the provider an action talks to: ``quo``, ``loops``, ``http``) the queue is counted
in requests: each waiting run of a recipe will make one request per action of that provider.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from automations.execution.pauses import paused_connections
from automations.ports import Store

__all__ = [
    "Backlog",
    "BacklogLine",
    "backlog_table",
    "connection_of",
    "drain_text",
    "measure_backlog",
]

#: The window "sent in the last minute" counts.
WINDOW_S = 60.0
#: The shortest stretch of sending a pace is taken over.
_MIN_PACE_S = 10.0


def connection_of(action: str) -> str:
    """The connection an action kind goes out on: ``quo.send_sms`` -> ``quo``."""
    return action.partition(".")[0]


@dataclass(frozen=True, slots=True)
class BacklogLine:
    """One recipe (``queued`` in runs) or one connection (``queued`` in requests)."""

    name: str
    queued: int
    #: Steps that ended in the last minute.
    sent_last_minute: int
    #: Seconds until the queue is empty at the last minute's pace (measured from its first
    #: send, if that was later); ``None`` when nothing is queued, or nothing went out in the
    #: last minute (no pace to go by).
    drains_in_s: float | None
    #: For a connection the runner has paused (its circuit breaker): why, as the runner
    #: recorded it in the store (``execution/pauses.py``).
    paused: str | None = None

    @property
    def stalled(self) -> bool:
        return self.queued > 0 and self.drains_in_s is None


@dataclass(frozen=True, slots=True)
class Backlog:
    recipes: tuple[BacklogLine, ...]
    connections: tuple[BacklogLine, ...]

    @property
    def busy(self) -> bool:
        """Whether anything is waiting."""
        return any(line.queued for line in self.recipes)


def _eta(queued: int, done: int, seconds: float) -> float | None:
    if queued == 0 or done == 0:
        return None
    return queued * seconds / done


def measure_backlog(
    store: Store, now: float, actions: Mapping[str, Sequence[str]] | None = None
) -> Backlog:
    """The backlog at ``now``. ``actions`` gives each recipe's action kinds (from the recipe
    files); without it, the kinds seen in the last minute stand in for them."""
    queued = Counter(store.unfinished_counts())  # one read of the unfinished runs' index
    done = store.steps_done_since(now - WINDOW_S)
    # the pace over the part of the minute that had sends: a runner that started 20 s ago
    # has sent for 20 s, not 60 (at least _MIN_PACE_S, so one early step is not a pace)
    first = min((t for *_, t in done), default=now - WINDOW_S)
    seconds = min(WINDOW_S, max(_MIN_PACE_S, now - first))
    sent_by_recipe = Counter(recipe for recipe, *_ in done)
    runs_by_recipe = Counter(recipe for recipe, _ in {(r, run) for r, _, run, _ in done})
    sent_by_connection = Counter(connection_of(action) for _, action, *_ in done)
    if actions is None:
        seen: dict[str, set[str]] = {}
        for recipe, action, *_ in done:
            seen.setdefault(recipe, set()).add(action)
        per_recipe: Mapping[str, Sequence[str]] = {r: sorted(a) for r, a in seen.items()}
    else:
        per_recipe = actions
    requests: Counter[str] = Counter()
    for recipe, n in queued.items():
        for action in per_recipe.get(recipe, ()):
            requests[connection_of(action)] += n
    names = sorted(set(queued) | set(sent_by_recipe))
    recipes = tuple(
        BacklogLine(
            name,
            queued[name],
            sent_by_recipe[name],
            _eta(queued[name], runs_by_recipe[name], seconds),
        )
        for name in names
    )
    pauses = paused_connections(store)
    connections = tuple(
        BacklogLine(
            c,
            requests[c],
            sent_by_connection[c],
            _eta(requests[c], sent_by_connection[c], seconds),
            pauses[c].reason if c in pauses else None,
        )
        for c in sorted(set(requests) | set(sent_by_connection) | set(pauses))
    )
    return Backlog(recipes, connections)


def drain_text(line: BacklogLine) -> str:
    """``~4m02s``, ``-`` (nothing queued), ``stalled`` (queued, nothing sent lately), or
    ``paused: why`` (a runner's circuit breaker paused the connection)."""
    if line.paused:
        return f"paused: {line.paused}"
    if line.queued == 0:
        return "-"
    if line.drains_in_s is None:
        return "stalled: nothing sent in the last minute"
    seconds = round(line.drains_in_s)
    if seconds < 60:
        return f"~{seconds}s"
    if seconds < 3600:
        return f"~{seconds // 60}m{seconds % 60:02d}s"
    return f"~{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def backlog_table(backlog: Backlog) -> list[str]:
    """``automations status``'s lines: a table of recipes, then one of connections."""
    out: list[str] = []
    for title, lines, unit in (
        ("RECIPE", backlog.recipes, "runs"),
        ("CONNECTION", backlog.connections, "requests"),
    ):
        out.append(f"{title:<28}  {'QUEUED ' + unit:>15}  {'SENT LAST MIN':>13}  DRAINS IN")
        for line in lines:
            out.append(
                f"{line.name[:28]:<28}  {line.queued:>15,}  {line.sent_last_minute:>13,}  "
                f"{drain_text(line)}"
            )
        if not lines:
            out.append("(none)")
        out.append("")
    return out[:-1]
