"""The runner's own parts of ``/healthz``'s detail (``runner.health`` draws the page).

``/healthz`` is answered on the intake's thread while runs execute on the runner's: every
section reads a snapshot (a dict replaced whole, or copied in one step), never a structure
while it is being changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from automations.diagnostics import Diagnostic
from automations.model import WebhookTrigger
from automations.runner.health import HealthSection, relative_to

if TYPE_CHECKING:
    from automations.runner.service import Runner

__all__ = ["add_runner_sections", "dispatch_view", "runner_errors"]


def add_runner_sections(runner: Runner) -> None:
    health = runner.health
    health.bind(started=lambda: runner.started, recipes=lambda: len(runner.recipes.by_name))

    def rel(path: str | Path) -> str:
        return relative_to(runner.directory, path)

    health.add(HealthSection("dry_run", lambda: runner.options.dry_run))
    health.add(
        HealthSection(
            "recipes",
            lambda: [
                {
                    "name": r.name,
                    "file": rel(r.source),
                    "trigger": r.trigger.kind,
                    "version": r.content_hash[:12],
                    **({"path": r.trigger.path} if isinstance(r.trigger, WebhookTrigger) else {}),
                }
                for r in sorted(runner.recipes.by_name.values(), key=lambda r: r.name)
            ],
        )
    )
    health.add(
        HealthSection(
            "errors",
            lambda: {
                rel(f): [{**d.as_dict(), "file": rel(d.file)} for d in ds]
                for f, ds in runner_errors(runner).items()
            },
            errors=lambda: len(runner_errors(runner)),
        )
    )
    health.add(
        HealthSection(
            "held",
            lambda: dict(sorted((n, c) for n, c in runner.held.items() if c)),
            errors=lambda: sum(1 for c in runner.held.values() if c),
        )
    )
    health.add(
        HealthSection(
            "tables",
            lambda: dict(sorted(runner.source_errors.copy().items())),
            errors=lambda: len(runner.source_errors),
        )
    )
    health.add(HealthSection("in_flight", lambda: runner.dispatcher.in_flight))
    health.add(HealthSection("lead", runner.lead.view))
    health.add(HealthSection("reloads", lambda: runner.reloads))
    # a paused connection counts as an error in the public summary: monitoring sees it
    health.add(
        HealthSection(
            "dispatch",
            lambda: dispatch_view(runner),
            errors=lambda: sum(b.paused for b in runner.connections.breakers()),
        )
    )


def runner_errors(runner: Runner) -> dict[str, list[Diagnostic] | tuple[Diagnostic, ...]]:
    """Errors by file: each file's latest version, then a hot reload that failed."""
    return {**runner.recipes.errors(), **runner.reload_errors}


def dispatch_view(runner: Runner) -> dict[str, Any]:
    """What the dispatcher knows, for ``/healthz`` and ``automations status``: per lane the
    runs executing and waiting in memory, per recipe the backlog as last counted in the
    store, and each provider connection's breaker (paused or not, why, next probe)."""
    return {
        "lanes": {
            v.lane: {"running": v.running, "queued": v.queued, "recipes": list(v.recipes)}
            for v in runner.dispatcher.lanes()
        },
        "backlog": dict(sorted(runner.backlog.items())),
        "connections": {
            view.connection: {
                "state": view.state.value,
                "reason": view.reason,
                "paused_at": view.paused_at,
                "probe_in_s": None if view.probe_in_s is None else round(view.probe_in_s, 1),
                "auth_failures": view.failures,
            }
            for view in (b.view() for b in runner.connections.breakers())
        },
    }
