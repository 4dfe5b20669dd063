"""What the console needs from the process it runs in, beside the store.

The console reads runs through the store port (a connection of its own); what only the running
process knows — the recipes it loaded and their diagnostics, its dispatcher's lanes and paused
connections — it reads through ``ConsoleHost``. ``RunnerHost`` is the runner's; tests give
their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from automations.diagnostics import Diagnostic
from automations.model import Recipe
from automations.records import RunRecord

if TYPE_CHECKING:
    from automations.runner.service import Runner

__all__ = ["ConsoleHost", "RunnerHost"]


class ConsoleHost(Protocol):
    """The running process, as the console sees it."""

    #: The recipes directory (files are shown relative to it).
    directory: Path
    #: The process sends nothing (``automations run --dry-run``): a replay is a dry run too,
    #: which marks nothing (the original stays replayable for real).
    dry_run: bool

    def recipes(self) -> Mapping[str, Recipe]:
        """The recipes that run now, by name."""
        ...

    def diagnostics(self) -> Mapping[str, Sequence[Diagnostic]]:
        """Lint diagnostics of each file's latest edit, by file name relative to
        ``directory``."""
        ...

    def dispatch(self) -> Mapping[str, Any]:
        """``Runner.dispatch_view()``: lanes, the backlog per recipe, each provider
        connection's breaker."""
        ...

    def submit(self, run: RunRecord) -> None:
        """Execute ``run``, a replay just recorded ``pending`` (called on the event loop)."""
        ...

    def throttled(self) -> Mapping[str, float]:
        """Attempts each provider connection answered 429, since the process started (a
        counter: the console turns it into "in the last minute")."""
        ...


class RunnerHost:
    """``ConsoleHost`` over a ``Runner``: a replay goes to its dispatcher, which executes it in
    its lane, paced like any run."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.directory = runner.directory
        self.dry_run = runner.options.dry_run

    def recipes(self) -> Mapping[str, Recipe]:
        return self._runner.recipes.by_name

    def diagnostics(self) -> Mapping[str, Sequence[Diagnostic]]:
        from automations.runner.health import relative_to

        out: dict[str, Sequence[Diagnostic]] = {}
        for name, ds in self._runner.recipes.diagnostics.items():
            out[relative_to(self.directory, name)] = ds
        for name, ds in self._runner.reload_errors.items():
            out[relative_to(self.directory, name)] = ds
        return out

    def dispatch(self) -> Mapping[str, Any]:
        return self._runner.dispatch_view()

    def throttled(self) -> Mapping[str, float]:
        out: dict[str, float] = {}
        for family in self._runner.metrics.rate_limited.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["connection"]] = sample.value
        return out

    def submit(self, run: RunRecord) -> None:
        from automations.runner.ordering import order_key_for

        runner = self._runner
        runner.dispatcher.notify(run, order_key_for(run, runner.recipes.by_name.get(run.recipe)))
