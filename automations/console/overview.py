"""The recipes page (``/recipes``) and the connections page (``/connections``).

Recipes: each loaded recipe with its trigger, file, version, the lint diagnostics of its file's
latest edit, its last runs by outcome and its held runs (approve / discard). Files whose latest
edit does not load are listed with their errors.

Connections: per provider connection the pace (requests ended in the last minute, 429s), whether
a runner paused it and why, and its backlog as a progress bar: how much of the largest queue
seen since it was last empty has gone out, and when the rest will have (``execution.backlog``).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from automations.execution.backlog import Backlog, drain_text, measure_backlog
from automations.model import DbTableSpec, Recipe, ScheduleTrigger, TableTrigger, WebhookTrigger
from automations.ports import Store
from automations.records import RunFilter, RunStatus
from automations.runner.health import relative_to
from automations.triggers.table_db import shown_database

if TYPE_CHECKING:
    from automations.console.app import Console

__all__ = ["Peaks", "Window", "recipe_rows", "routes", "trigger_text"]

#: How many of a recipe's latest runs its outcome counts cover.
RECENT = 100


def trigger_text(recipe: Recipe, directory: Any) -> str:
    """``webhook /hooks/leads``, ``table leads.csv``, ``schedule 0 7 * * * (Europe/Paris)``."""
    t = recipe.trigger
    if isinstance(t, WebhookTrigger):
        return f"webhook {t.path}"
    if isinstance(t, TableTrigger):
        spec = t.table
        if isinstance(spec, DbTableSpec):
            # the database as the recipe writes it: never a password or a variable's value
            return f"table {spec.table or 'query'} in {shown_database(spec.database)}"
        return f"table {relative_to(directory, spec.path)}"
    if isinstance(t, ScheduleTrigger):
        when = f"cron {t.cron} ({t.timezone})" if t.cron else f"every {t.every}"
        text = f"schedule {when}"
        if t.table is not None:
            text += f" over {relative_to(directory, t.table.path)}"
        return text
    return str(getattr(t, "kind", "?"))


def recipe_rows(store: Store, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per recipe: its latest runs by outcome, when it last ran, and its held runs."""
    held = store.count_by_recipe(RunStatus.HELD)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        runs = store.list_runs(RunFilter(recipe=name, limit=RECENT))
        counts = Counter(r.status.value for r in runs)
        out[name] = {
            "counts": sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])),
            "seen": len(runs),
            "last": runs[0].created_at if runs else None,
            "held": held.get(name, 0),
        }
    for name, n in held.items():  # held runs of a recipe no longer loaded are decided too
        out.setdefault(name, {"counts": [], "seen": 0, "last": None, "held": n})
    return out


@dataclass
class Window:
    """A counter's increase over the last minute, from samples of its running total (taken
    every few seconds while the console runs, and at each view of the page)."""

    span_s: float = 60.0
    samples: deque[tuple[float, dict[str, float]]] = field(default_factory=deque)

    def add(self, now: float, totals: Mapping[str, float]) -> None:
        self.samples.append((now, dict(totals)))
        # keep the newest sample at least span_s old, as the base of the difference
        while len(self.samples) > 1 and self.samples[1][0] <= now - self.span_s:
            self.samples.popleft()

    def last_minute(self) -> dict[str, int]:
        if not self.samples:
            return {}
        _, base = self.samples[0]
        _, last = self.samples[-1]
        return {k: int(v - base.get(k, 0.0)) for k, v in last.items()}


@dataclass
class Peaks:
    """The largest queue seen per connection since it was last empty: a progress bar's whole."""

    seen: dict[str, int] = field(default_factory=dict)

    def update(self, name: str, queued: int) -> int:
        if queued == 0:
            self.seen.pop(name, None)
            return 0
        peak = max(self.seen.get(name, 0), queued)
        self.seen[name] = peak
        return peak


def connection_rows(
    backlog: Backlog,
    dispatch: Mapping[str, Any],
    peaks: Peaks,
    throttled: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    throttled = throttled or {}
    breakers: Mapping[str, Any] = dispatch.get("connections", {})
    names = sorted({line.name for line in backlog.connections} | set(breakers))
    lines = {line.name: line for line in backlog.connections}
    rows = []
    for name in names:
        line = lines.get(name)
        breaker = breakers.get(name) or {}
        queued = line.queued if line else 0
        peak = peaks.update(name, queued)
        paused = breaker.get("state") not in (None, "closed") or (line and line.paused)
        reason = breaker.get("reason") or (line.paused if line else None)
        rows.append(
            {
                "name": name,
                "queued": queued,
                "sent_last_minute": line.sent_last_minute if line else 0,
                "drain": drain_text(line) if line else "-",
                "paused": bool(paused),
                "state": breaker.get("state", "closed"),
                "reason": reason,
                "probe_in_s": breaker.get("probe_in_s"),
                "peak": peak,
                "done": peak - queued,
                "throttled": throttled.get(name),
            }
        )
    return rows


def routes(console: Console) -> list[BaseRoute]:
    peaks = Peaks()
    throttled = console.throttled

    async def recipes_page(request: Request) -> Response:
        host = console.host
        recipes = host.recipes()
        diagnostics = host.diagnostics()
        rows = await console.call(recipe_rows, console.store, sorted(recipes))
        listed = []
        files_seen = set()
        for name in sorted(rows):
            recipe = recipes.get(name)
            file = relative_to(host.directory, recipe.source) if recipe else None
            files_seen.add(file)
            listed.append(
                {
                    "name": name,
                    "recipe": recipe,
                    "file": file,
                    "trigger": trigger_text(recipe, host.directory) if recipe else "not loaded",
                    "version": recipe.content_hash[:12] if recipe else None,
                    "diagnostics": list(diagnostics.get(file, ())) if file else [],
                    **rows[name],
                }
            )
        broken = {f: list(ds) for f, ds in sorted(diagnostics.items()) if f not in files_seen}
        return console.page(
            request,
            "recipes.html",
            {"recipes": listed, "broken": broken, "notice": request.query_params.get("notice")},
        )

    async def connections_page(request: Request) -> Response:
        actions = {n: [a.kind for a in r.actions] for n, r in console.host.recipes().items()}
        backlog: Backlog = await console.call(
            measure_backlog, console.store, console.clock(), actions
        )
        dispatch = console.host.dispatch()
        console.sample_pace()
        return console.page(
            request,
            "connections.html",
            {
                "connections": connection_rows(backlog, dispatch, peaks, throttled.last_minute()),
                "recipes": [line for line in backlog.recipes if line.queued],
                "lanes": dispatch.get("lanes", {}),
                "drain": drain_text,
            },
        )

    return [
        Route("/recipes", recipes_page, methods=["GET"]),
        Route("/connections", connections_page, methods=["GET"]),
    ]
