"""Gauges read at scrape time: from the store (global across nodes, kept across restarts) and
from the runner's memory (what this process is doing now).

The store's counts are the cheap ones: each reads a partial index that holds only the runs it
counts (``runs_backlog`` for the queue, ``runs_attention`` for held and unknown runs), so a
scrape costs the same at a million runs as at a thousand; it never counts the finished history.
A store that cannot answer (locked, gone) leaves those gauges out and sets
``automations_store_up`` to 0, so an alert can tell "no backlog" from "no answer".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from automations.errors import StoreError
from automations.execution.backlog import connection_of
from automations.ports import RunStore
from automations.records import RunStatus

__all__ = ["RunnerCollector", "StoreCollector"]

log = logging.getLogger("automations.runner")


class StoreCollector(Collector):
    """Queue depth, held and unknown runs, from ``store`` at each scrape. ``actions()`` gives
    each loaded recipe's action kinds (``quo.send_sms``...), from which the queue is also
    counted in requests per connection. ``store`` may be replaced: the console reads through a
    connection of its own, so a scrape never waits on the runner's."""

    def __init__(self, store: RunStore, actions: Callable[[], Mapping[str, Sequence[str]]]) -> None:
        self.store = store
        self._actions = actions

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "automations_store_up", "1 when the store answered this scrape's counts, else 0."
        )
        try:
            store = self.store
            queued = store.unfinished_counts()
            held = store.count_by_recipe(RunStatus.HELD)
            unknown = store.count_by_recipe(RunStatus.UNKNOWN)
        except StoreError as exc:
            log.debug("metrics: the store did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _by_recipe(
            "automations_queued_runs",
            "Runs waiting or executing (pending or running), by recipe: the backlog, all nodes.",
            queued,
        )
        requests: dict[str, int] = {}
        actions = self._actions()
        for recipe, n in queued.items():
            for kind in actions.get(recipe, ()):
                name = connection_of(kind)
                requests[name] = requests.get(name, 0) + n
        family = GaugeMetricFamily(
            "automations_queued_requests",
            "Requests the backlog will make, by connection (its runs times their recipe's "
            "actions on that connection).",
            labels=["connection"],
        )
        for name in sorted(requests):
            family.add_metric([name], requests[name])
        yield family
        yield _by_recipe(
            "automations_held_runs",
            "Runs held by a recipe's flood brake, waiting for a person to approve or discard.",
            held,
        )
        yield _by_recipe(
            "automations_unknown_runs",
            "Runs stopped at an unknown step, waiting for a person to resolve it.",
            unknown,
        )


class RunnerCollector(Collector):
    """What the runner is doing now: runs executing, recipes loaded and in error, and each
    connection's circuit breaker."""

    def __init__(
        self,
        *,
        in_flight: Callable[[], int],
        recipes: Callable[[], int],
        errors: Callable[[], int],
        paused: Callable[[], Mapping[str, bool]],
    ) -> None:
        self._in_flight = in_flight
        self._recipes = recipes
        self._errors = errors
        self._paused = paused

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "automations_runs_in_flight", "Runs this process is executing now.", self._in_flight()
        )
        yield GaugeMetricFamily(
            "automations_recipes_loaded", "Recipes loaded and running.", self._recipes()
        )
        yield GaugeMetricFamily(
            "automations_recipe_files_in_error",
            "Recipe files whose latest version has errors (the version before keeps running).",
            self._errors(),
        )
        family = GaugeMetricFamily(
            "automations_connection_paused",
            "1 while a connection's circuit breaker holds its requests (its key was refused).",
            labels=["connection"],
        )
        for name, paused in sorted(self._paused().items()):
            family.add_metric([name], 1 if paused else 0)
        yield family


def _by_recipe(name: str, documentation: str, counts: Mapping[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["recipe"])
    for recipe in sorted(counts):
        family.add_metric([recipe], counts[recipe])
    return family
