"""The runner's metrics for ``GET /metrics`` (Prometheus text format, ``prometheus_client``).

- ``instruments``: ``RunnerMetrics``, the counters of what this process saw (runs ended,
  requests answered, retries, 429s, waits for a slot, webhooks refused), in a registry of its
  own per runner.
- ``collectors``: gauges read at scrape time, from the store (queue depth, held and unknown
  runs: global across nodes, kept across restarts) and from the runner (runs in flight,
  recipes loaded, paused connections).
- ``endpoint``: the ``/metrics`` handler with its access rule (Bearer token off loopback).

``instrument(runner)`` builds the registry and hooks it to the runner at three narrow seams:
the ``Connections``' observer, the executor's ``finished`` listeners, and the intake's
rejection callbacks (``build_app``, ``guarded_protocol``). docs/console.md lists every metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automations.metrics.collectors import RunnerCollector, StoreCollector
from automations.metrics.endpoint import bearer_matches, metrics_endpoint
from automations.metrics.instruments import REJECTION_REASONS, RunnerMetrics
from automations.ports import RunStore

if TYPE_CHECKING:
    from automations.runner.service import Runner

__all__ = [
    "REJECTION_REASONS",
    "RunnerCollector",
    "RunnerMetrics",
    "StoreCollector",
    "bearer_matches",
    "instrument",
    "metrics_endpoint",
]


def instrument(
    runner: Runner, *, store: RunStore | None = None, process: bool = True
) -> RunnerMetrics:
    """The metrics of ``runner``, hooked to its connections and executor. The store gauges read
    ``store`` (the console's own read connection, when it has one), else the runner's."""
    metrics = RunnerMetrics(process=process)
    runner.connections.observer = metrics
    runner.executor.finished.append(metrics.run_finished)
    metrics.store_gauges = StoreCollector(
        store or runner.store,
        lambda: {r.name: [a.kind for a in r.actions] for r in runner.recipes.by_name.values()},
    )
    metrics.registry.register(metrics.store_gauges)
    metrics.registry.register(
        RunnerCollector(
            in_flight=lambda: runner.dispatcher.in_flight,
            recipes=lambda: len(runner.recipes.by_name),
            errors=lambda: len({**runner.recipes.errors(), **runner.reload_errors}),
            paused=lambda: {b.connection.value: b.paused for b in runner.connections.breakers()},
        )
    )
    return metrics
