"""The runner: recipes loaded and hot-reloaded, trigger sources started, runs dispatched.

Start-up order (what makes a restart lose nothing): open the store, load the recipes, resume
every run left ``pending`` or ``running``, then start the trigger sources (which catch up on table
rows and schedule fire times missed while down) and the webhook server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchfiles import awatch

from automations.connections import Connections
from automations.execution.executor import Executor
from automations.execution.versions import load_version
from automations.model import Recipe, ScheduleTrigger, TableTrigger, WebhookTrigger
from automations.recipes.compiler import RECIPE_SUFFIXES, missing_variables
from automations.records import RunRecord, RunStatus, TriggerKind
from automations.runner.dispatch import Dispatcher
from automations.runner.health import Health, HealthSection, relative_to
from automations.runner.inbox import IntakePressure
from automations.runner.registry import RecipeSet, reload
from automations.runner.sources import run_schedule, run_table
from automations.stores import SQLiteStore

__all__ = ["Runner", "RunnerOptions"]

log = logging.getLogger("automations.runner")
runs_log = logging.getLogger("automations.runs")

#: Warnings that a variable is not set: a dry run lists the variables once instead.
_UNSET_CODES = frozenset({"ENV001", "ENV002"})


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    dry_run: bool = False
    concurrency: int = 8
    #: How long SIGTERM waits for in-flight runs before leaving them to the next start.
    grace_s: float = 10.0
    #: Retention of finished runs: successes (and skips) 30 days, failures and unknowns 90.
    keep_succeeded_s: float = 30 * 86400.0
    keep_failed_s: float = 90 * 86400.0
    #: How often old runs are pruned.
    prune_every_s: float = 3600.0


class Runner:
    def __init__(
        self,
        directory: Path,
        store: SQLiteStore,
        connections: Connections,
        env: Mapping[str, str],
        options: RunnerOptions = RunnerOptions(),
    ) -> None:
        self.directory = directory
        self.store = store
        self.env = env
        self.options = options
        self.executor = Executor(store, connections, env)
        self.pressure = IntakePressure()
        self.dispatcher = Dispatcher(self._execute, options.concurrency, gate=self.pressure.wait)
        self.recipes = RecipeSet()
        self.started = False
        self._sources: dict[str, tuple[Any, asyncio.Task[None]]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.reloads = 0
        self.health = Health.from_env(env)
        self._health_sections()
        #: In a dry run, the variables last reported as not set.
        self._unset: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._apply(reload(self.recipes, self.directory, self.env), initial=True)
        resumed = self.store.unfinished()
        for run in resumed:
            self.dispatcher.submit(run, _order_key(run))
        if resumed:
            log.info("resuming %d run(s) left unfinished", len(resumed))
        await self._start_sources()
        loop = asyncio.get_running_loop()
        self._watcher = loop.create_task(self._watch_recipes())
        self._pruner = loop.create_task(self._prune_forever())
        self.started = True

    async def stop(self) -> None:
        """Stop taking events, let the runs already executing finish (bounded by ``grace_s``);
        runs not started yet stay pending for the next start."""
        self._stop.set()
        if self._pruner is not None:
            self._pruner.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        for _, task in self._sources.values():
            task.cancel()
        tasks = [t for _, t in self._sources.values()]
        if self._watcher is not None:
            tasks.append(self._watcher)
        await asyncio.gather(*tasks, return_exceptions=True)
        finished = await self.dispatcher.drain(self.options.grace_s, finish_queued=False)
        if not finished:
            log.warning("stopped with runs in flight; they resume on the next start")

    # -- events in ---------------------------------------------------------------------------

    def accept_many(
        self, items: Sequence[tuple[RunRecord, str | None]]
    ) -> list[tuple[RunRecord, bool]]:
        """Record runs durably in one commit and dispatch the new ones (the trigger sources' and,
        through ``GroupCommit``, the webhook intake's callback)."""
        results = self.store.enqueue_many([r for r, _ in items])
        for (stored, is_new), (_, key) in zip(results, items, strict=True):
            if is_new and stored.status is RunStatus.PENDING:  # a held run waits for a person
                self.dispatcher.submit(stored, key)
        return results

    # -- runs out ----------------------------------------------------------------------------

    async def _execute(self, run: RunRecord) -> None:
        recipe = self._recipe_for(run)
        if recipe is None:
            log.warning(
                "run %s waits: recipe %s is not loaded (it runs when the recipe is back)",
                run.id,
                run.recipe,
            )
            return
        started = time.perf_counter()
        final = await self.executor.execute(run, recipe, dry_run=self.options.dry_run)
        ms = (time.perf_counter() - started) * 1000
        level = logging.INFO if final.status is not RunStatus.FAILED else logging.WARNING
        runs_log.log(
            level,
            "%s %s %s %.1fms%s",
            final.recipe,
            final.event_key,
            final.status.value,
            ms,
            f" {final.error}" if final.error else "",
            extra={
                "run": {
                    "run_id": final.id,
                    "recipe": final.recipe,
                    "event_key": final.event_key,
                    "status": final.status.value,
                    "duration_ms": round(ms, 2),
                    "dry_run": final.dry_run,
                    "error": final.error,
                }
            },
        )

    def _recipe_for(self, run: RunRecord) -> Recipe | None:
        current = self.recipes.by_name.get(run.recipe)
        if (
            run.status is RunStatus.RUNNING
            and run.recipe_hash
            and (current is None or current.content_hash != run.recipe_hash)
        ):
            try:  # a run resumed after a restart finishes on the version it started with
                return load_version(self.store, run, self.env, prefer_current=False)
            except Exception:  # unreadable: fall back to the current version
                pass
        return current

    # -- recipes and sources -----------------------------------------------------------------

    def _apply(self, new: RecipeSet, *, initial: bool = False) -> None:
        self._log_diagnostics(new)
        added: set[str] = set()
        if not initial:
            added = set(new.by_name) - set(self.recipes.by_name)
            removed = set(self.recipes.by_name) - set(new.by_name)
            changed = {
                n
                for n, r in new.by_name.items()
                if n in self.recipes.by_name and self.recipes.by_name[n] is not r
            }
            if added or removed or changed:
                log.info(
                    "recipes reloaded: added %s, changed %s, removed %s",
                    sorted(added) or "-",
                    sorted(changed) or "-",
                    sorted(removed) or "-",
                )
        self.recipes = new
        if added:
            # runs that found their recipe gone wait in the store; it is back, so they run now
            for run in self.store.unfinished():
                if run.recipe in added:
                    self.dispatcher.submit(run, _order_key(run))

    def _log_diagnostics(self, new: RecipeSet) -> None:
        """Each file's findings when they change. In a dry run, the variables that only real
        runs need are not warned about recipe by recipe: one line lists them all."""
        quiet = _UNSET_CODES if self.options.dry_run else frozenset()
        for file, diags in new.diagnostics.items():
            if diags != self.recipes.diagnostics.get(file):
                for d in diags:
                    if d.code not in quiet:
                        (log.error if d.is_error else log.warning)("%s", d.format())
        if self.options.dry_run:
            recipes = new.by_name.values()
            unset = sorted({n for r in recipes for n in missing_variables(r, self.env)})
            if unset != self._unset:
                self._unset = unset
                if unset:
                    log.warning(
                        "dry run: not set here (only real runs, and webhooks verified with "
                        "them, need them): %s",
                        ", ".join(unset),
                    )

    async def _start_sources(self) -> None:
        wanted = {
            r.name: r
            for r in self.recipes.by_name.values()
            if isinstance(r.trigger, TableTrigger | ScheduleTrigger)
        }
        for name in list(self._sources):
            trig, task = self._sources[name]
            if name not in wanted or wanted[name].trigger != trig:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                del self._sources[name]
        waits = []
        for name, recipe in wanted.items():
            if name in self._sources:
                continue  # unchanged trigger: its position and schedule are untouched
            started = asyncio.Event()
            if isinstance(recipe.trigger, TableTrigger):
                coro = run_table(recipe, self.store, self.accept_many, started)
            else:
                coro = run_schedule(recipe, self.store, self.accept_many, started)
            task = asyncio.get_running_loop().create_task(coro, name=f"source:{name}")
            task.add_done_callback(_log_crash)
            self._sources[name] = (recipe.trigger, task)
            waits.append(started.wait())
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), timeout=30)

    async def _prune_forever(self) -> None:
        """Delete finished runs past their retention, now and then; never pending or running
        ones. Failures are kept longer than successes."""
        opts = self.options
        while True:
            removed = self.store.prune(
                now=time.time(),
                keep_succeeded_s=opts.keep_succeeded_s,
                keep_failed_s=opts.keep_failed_s,
            )
            if removed:
                log.info("pruned %d run(s) past their retention", removed)
            await asyncio.sleep(opts.prune_every_s)

    async def _watch_recipes(self) -> None:
        async for changes in awatch(
            self.directory, debounce=50, step=10, recursive=True, stop_event=self._stop
        ):
            if not any(Path(p).suffix in RECIPE_SUFFIXES for _, p in changes):
                continue
            self._apply(reload(self.recipes, self.directory, self.env))
            self.reloads += 1
            await self._start_sources()

    # -- health ------------------------------------------------------------------------------

    def _health_sections(self) -> None:
        """The runner's own parts of ``/healthz``'s detail (see ``runner.health``)."""
        self.health.bind(started=lambda: self.started, recipes=lambda: len(self.recipes.by_name))

        def rel(path: str | Path) -> str:
            return relative_to(self.directory, path)

        self.health.add(HealthSection("dry_run", lambda: self.options.dry_run))
        self.health.add(
            HealthSection(
                "recipes",
                lambda: [
                    {
                        "name": r.name,
                        "file": rel(r.source),
                        "trigger": r.trigger.kind,
                        "version": r.content_hash[:12],
                        **(
                            {"path": r.trigger.path}
                            if isinstance(r.trigger, WebhookTrigger)
                            else {}
                        ),
                    }
                    for r in sorted(self.recipes.by_name.values(), key=lambda r: r.name)
                ],
            )
        )
        self.health.add(
            HealthSection(
                "errors",
                lambda: {
                    rel(f): [{**d.as_dict(), "file": rel(d.file)} for d in ds]
                    for f, ds in self.recipes.errors().items()
                },
                errors=lambda: len(self.recipes.errors()),
            )
        )
        self.health.add(HealthSection("in_flight", lambda: self.dispatcher.in_flight))
        self.health.add(HealthSection("reloads", lambda: self.reloads))


def _order_key(run: RunRecord) -> str | None:
    """The order key the run's source gave it (``sources``), rebuilt from its event key."""
    if run.trigger is TriggerKind.TABLE:
        # an updated row's event key is "<row key>@<16 hex digits>"; row keys (e-mail
        # addresses) may hold "@" themselves, so only that exact suffix is cut
        key, at, digest = run.event_key.rpartition("@")
        if not (at and len(digest) == 16 and all(c in _HEX for c in digest)):
            key = run.event_key
        return f"{run.recipe}:{key}"
    if run.trigger is TriggerKind.SCHEDULE and ":" in run.event_key[20:]:
        return f"{run.recipe}:{run.event_key[21:]}"
    return None


_HEX = frozenset("0123456789abcdef")


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("trigger source %s stopped: %r", task.get_name(), task.exception())
