"""The runner: recipes loaded and hot-reloaded, trigger sources started, runs dispatched.

Start-up order (what makes a restart lose nothing): open the store, load the recipes, resume
every run left ``pending`` or ``running`` (the dispatcher reads them from the store in pages),
then start the trigger sources (which catch up on table rows and schedule fire times missed
while down) and the webhook server.

Store calls of the intake and of execution are made on threads of their own (``StoreThread``):
a locked, full or slow database makes those callers wait, never the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchfiles import awatch

from automations.actions import ACTIONS
from automations.breaker import Breaker
from automations.connections import Connections
from automations.diagnostics import Diagnostic, Severity
from automations.errors import StoreError
from automations.execution.executor import Executor
from automations.execution.held import decisions
from automations.execution.pauses import Pause, clear_pauses, record_pause
from automations.execution.progress import BacklogProgress
from automations.execution.rows import row_for
from automations.execution.versions import load_version
from automations.metrics import instrument
from automations.model import Recipe, ScheduleTrigger, TableTrigger, WebhookTrigger
from automations.outbound import Connection
from automations.ports import Store
from automations.recipes.compiler import RECIPE_SUFFIXES, display_name, missing_variables
from automations.recipes.upsert import upsert_key
from automations.records import RunRecord, RunStatus, TriggerKind
from automations.runner.dispatch import Dispatcher, Outcome
from automations.runner.health import Health, HealthSection, relative_to
from automations.runner.inbox import IntakePressure
from automations.runner.lead import Lead
from automations.runner.registry import RecipeSet, reload
from automations.runner.sources import run_schedule, run_table, supervised
from automations.stores.leaders import leaders_for
from automations.stores.thread import StoreThread
from automations.stores.wakeup import wakeup_for
from automations.triggers.table_files import TableAccess

__all__ = ["Runner", "RunnerOptions"]

log = logging.getLogger("automations.runner")
runs_log = logging.getLogger("automations.runs")

#: Run outcomes logged as warnings: someone should look at them.
_NEEDS_A_LOOK = frozenset({RunStatus.FAILED, RunStatus.UNKNOWN})

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
    #: How often the backlog shown in ``/healthz`` is counted.
    backlog_every_s: float = 5.0
    #: While runs wait, each recipe's backlog progress (sent of how many, time left) is logged
    #: this often.
    backlog_log_every_s: float = 10.0
    #: Directories outside the recipes directory that table files may be in.
    tables_outside: tuple[Path, ...] = ()
    #: How often the runner looks for held runs a person approved or discarded (another
    #: process: ``automations approve``).
    decisions_every_s: float = 1.0
    #: Never LISTEN for wake-ups on PostgreSQL (PgBouncer in transaction mode): poll only.
    poll_only: bool = False
    #: How long a node's lead (schedules, table watching, pruning) lasts unless renewed; it is
    #: renewed every third of it. A node that stops renewing is replaced after this long.
    leader_ttl_s: float = 15.0


class Runner:
    def __init__(
        self,
        directory: Path,
        store: Store,
        connections: Connections,
        env: Mapping[str, str],
        options: RunnerOptions = RunnerOptions(),
    ) -> None:
        self.directory = directory
        self.store = store
        self.env = env
        self.options = options
        self.connections = connections
        #: Store calls of execution and of the webhook intake, each on its own thread.
        self.exec_io = StoreThread("store-exec")
        self.intake_io = StoreThread("store-intake")
        self.executor = Executor(store, connections, env, io=self.exec_io, defer_refused=True)
        self.pressure = IntakePressure()
        #: Wakes a claim loop when runs wait unclaimed: a NOTIFY from any node on PostgreSQL
        #: (unless ``poll_only``), else this process's own ``set()`` (``stores/wakeup.py``).
        self.wakeup = wakeup_for(store, poll_only=options.poll_only)
        #: Which node fires schedules, watches tables and prunes: the one holding the lead
        #: (always this one on a store one process owns). Correctness never rests on it: runs
        #: are unique by (recipe, event key); it saves doing the work twice.
        self.lead = Lead(leaders_for(store), ttl_s=options.leader_ttl_s, changed=self._lead_changed)
        self._leader: asyncio.Task[None] | None = None
        self.dispatcher = Dispatcher(
            self._execute,
            self._read_backlog,
            lane_of=self.lane_of,
            order_key_of=self._order_key_of,
            admit=self._admit,
            concurrency=options.concurrency,
            gate=self.pressure.wait,
        )
        connections.breaker_listeners.append(self._breaker_changed)
        #: Pending and running runs per recipe, as last counted in the store (``/healthz``).
        self.backlog: dict[str, int] = {}
        self.recipes = RecipeSet()
        self.started = False
        self._sources: dict[str, tuple[Any, asyncio.Task[None]]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._counter: asyncio.Task[None] | None = None
        #: Lane names by recipe version (``lane_of``).
        self._lanes: dict[str, str] = {}
        self._backlog_logger: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._stop = asyncio.Event()
        self.reloads = 0
        #: Errors of the last hot reload that failed as a whole (by display file name), until a
        #: reload succeeds; the recipes' own diagnostics are in ``recipes.diagnostics``.
        self.reload_errors: dict[str, tuple[Diagnostic, ...]] = {}
        self.tables = TableAccess.for_recipes(directory, env, options.tables_outside)
        #: Held runs per recipe (the flood brake), as the store has them.
        self.held: dict[str, int] = {}
        #: Why a recipe's trigger source cannot use its table, by recipe name.
        self.source_errors: dict[str, str] = {}
        self._decisions = 0
        self._decider: asyncio.Task[None] | None = None
        self.health = Health.from_env(env)
        self._health_sections()
        #: Writes of breaker pauses to the store still in flight (kept so they are not lost).
        self._pause_writes: set[asyncio.Task[None]] = set()
        #: In a dry run, the variables last reported as not set.
        self._unset: list[str] = []
        #: ``/metrics``: counters hooked to the connections, the executor and the intake.
        self.metrics = instrument(self)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        folder = _identity(self.directory)  # the folder these recipes come from
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await self.wakeup.start()
        self._apply(
            reload(self.recipes, self.directory, self.env, tables=self.tables), initial=True
        )
        await self.exec_io(clear_pauses, self.store)  # this runner's breakers start closed
        self._decisions = await self.exec_io(decisions, self.store)
        self.held = await self.exec_io(self.store.count_by_recipe, RunStatus.HELD)
        self.backlog = await self.exec_io(self.store.unfinished_counts)
        for recipe in self.backlog:
            self.dispatcher.wake(recipe)
        if self.backlog:
            log.info("resuming %d run(s) left unfinished", sum(self.backlog.values()))
        await self.lead.check()  # the sources start here when this node leads
        loop = asyncio.get_running_loop()
        self._leader = loop.create_task(self.lead.keep())
        self._watcher = loop.create_task(self._watch_recipes(folder))
        self._pruner = loop.create_task(self._prune_forever())
        self._counter = loop.create_task(self._count_backlog())
        self._backlog_logger = loop.create_task(self._report_backlog_forever())
        self._decider = loop.create_task(self._watch_decisions())
        self.started = True

    async def stop(self) -> None:
        """Stop taking events, let the runs already executing finish (bounded by ``grace_s``);
        runs not started yet stay pending for the next start."""
        self._stop.set()
        for task in (
            self._pruner,
            self._counter,
            self._backlog_logger,
            self._decider,
            self._leader,
        ):
            if task is not None:
                task.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        for _, task in self._sources.values():
            task.cancel()
        tasks = [t for _, t in self._sources.values()]
        if self._watcher is not None:
            tasks.append(self._watcher)
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.lead.resign()
        await self.wakeup.aclose()
        finished = await self.dispatcher.drain(self.options.grace_s, finish_queued=False)
        if not finished:
            log.warning("stopped with runs in flight; they resume on the next start")
        # the calls already made complete (a write is never cut in half)
        await asyncio.to_thread(self.intake_io.close)
        await asyncio.to_thread(self.exec_io.close)
        await asyncio.to_thread(self.lead.close)

    # -- events in ---------------------------------------------------------------------------

    def accept_many(
        self, items: Sequence[tuple[RunRecord, str | None]]
    ) -> list[tuple[RunRecord, bool]]:
        """Record runs durably in one commit and dispatch the new ones (the trigger sources'
        callback). Called on any thread: the table sources scan on worker threads; the
        dispatcher hears of the new runs on the event loop."""
        results = self.store.enqueue_many([r for r, _ in items])
        if any(new and run.status is RunStatus.PENDING for run, new in results):
            # committed: wake the other nodes (a hint; no-op on a store of one process)
            self.store.notify_pending()
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._dispatch(results, items)
        else:
            loop.call_soon_threadsafe(self._dispatch, results, items)
        return results

    async def accept_batch(
        self, items: Sequence[tuple[RunRecord, str | None]]
    ) -> list[tuple[RunRecord, bool]]:
        """``accept_many`` with the commit made on the intake's store thread (the webhook
        intake's callback, through ``GroupCommit``)."""
        results = await self.intake_io(self.store.enqueue_many, [r for r, _ in items])
        self._dispatch(results, items)
        return results

    def _dispatch(
        self,
        results: Sequence[tuple[RunRecord, bool]],
        items: Sequence[tuple[RunRecord, str | None]],
    ) -> None:
        ready = []
        for (stored, is_new), (_, key) in zip(results, items, strict=True):
            if not is_new:
                continue
            if stored.status is RunStatus.PENDING:
                ready.append((stored, self._notify_key(stored, key)))
            elif stored.status is RunStatus.HELD:  # waits for a person (approve / discard)
                self.held[stored.recipe] = self.held.get(stored.recipe, 0) + 1
        self.dispatcher.notify_many(ready)

    async def _read_backlog(self, recipe: str, after: str | None, limit: int) -> list[RunRecord]:
        return await self.exec_io(self.store.unfinished_after, recipe, after, limit)

    # -- lanes and breakers ------------------------------------------------------------------

    def _order_key_of(self, run: RunRecord) -> str | None:
        return order_key_for(run, self.recipes.by_name.get(run.recipe))

    def _notify_key(self, run: RunRecord, key: str | None) -> str | None:
        """The order key of a run just recorded: its source's, unless its recipe upserts (then
        the upsert's key, as for a run read back from the store)."""
        recipe = self.recipes.by_name.get(run.recipe)
        if recipe is not None and any(a.response_as for a in recipe.actions):
            return order_key_for(run, recipe)
        return key

    def lane_of(self, recipe: str) -> str | None:
        """The dispatch lane of a recipe: the provider connections its actions use, joined by
        ``+`` (``loops``, ``quo``, ``loops+quo``, ``http``; ``none`` without actions); ``None``
        while the recipe is not loaded."""
        r = self.recipes.by_name.get(recipe)
        if r is None:
            return None
        lane = self._lanes.get(r.content_hash)
        if lane is None:
            used = {ACTIONS[a.kind].connection.value for a in r.actions if a.kind in ACTIONS}
            lane = self._lanes[r.content_hash] = "+".join(sorted(used)) or "none"
        return lane

    def _admit(self, lane: str) -> tuple[int, float | None]:
        """How many runs of ``lane`` may execute now: none while one of its connections is
        paused (asking again when its probe is due), one for the probe, else no limit."""
        limit: int = self.options.concurrency
        recheck: float | None = None
        for name in lane.split("+"):
            if name not in _PROVIDERS:
                continue
            breaker = self.connections.breaker_for(_PROVIDERS[name])
            if breaker is None or not breaker.paused:
                continue
            wait = breaker.probe_in()
            if wait is None:  # its probe is out: wait for the answer
                return 0, None
            if wait > 0:
                limit, recheck = 0, wait if recheck is None else min(recheck, wait)
            else:
                limit = min(limit, 1)
        return limit, recheck

    def _breaker_changed(self, breaker: Breaker) -> None:
        self.dispatcher.refresh()
        # written for `status` and `show`, which read the store alone (execution/pauses.py)
        view = breaker.view()
        pause = Pause(view.connection, view.reason or "paused", view.paused_at)
        task = asyncio.get_running_loop().create_task(
            self._record_pause(view.connection, pause if breaker.paused else None)
        )
        self._pause_writes.add(task)
        task.add_done_callback(self._pause_writes.discard)

    async def _record_pause(self, connection: str, pause: Pause | None) -> None:
        try:
            await self.exec_io(record_pause, self.store, connection, pause)
        except Exception as exc:  # the runner's own view (/healthz, its log) still says it
            log.warning("could not record the %s connection's pause: %s", connection, exc)

    # -- runs out ----------------------------------------------------------------------------

    async def _execute(self, run: RunRecord) -> Outcome:
        recipe = await self._recipe_for(run)
        if recipe is None:
            log.warning(
                "run %s waits: recipe %s is not loaded (it runs when the recipe is back)",
                run.id[:12],
                run.recipe,
                extra={"run_id": run.id},
            )
            return Outcome.DONE
        started = time.perf_counter()
        final = await self.executor.execute(run, recipe, dry_run=self.options.dry_run)
        ms = (time.perf_counter() - started) * 1000
        if final.status is RunStatus.PENDING:
            runs_log.info(
                "run %s %s %s waits: %s",
                final.id[:12],
                final.recipe,
                final.event_key,
                final.error,
                extra={
                    "run": {
                        "run_id": final.id,
                        "recipe": final.recipe,
                        "event_key": final.event_key,
                        "status": final.status.value,
                        "error": final.error,
                    }
                },
            )
            return Outcome.DEFERRED
        # a failure, and an unknown outcome (a person must check and resolve it), are warnings
        level = logging.WARNING if final.status in _NEEDS_A_LOOK else logging.INFO
        runs_log.log(
            level,
            "run %s %s %s %s %.1fms%s",
            final.id[:12],
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
        return Outcome.DONE

    async def _recipe_for(self, run: RunRecord) -> Recipe | None:
        current = self.recipes.by_name.get(run.recipe)
        if (
            run.status is RunStatus.RUNNING
            and run.recipe_hash
            and (current is None or current.content_hash != run.recipe_hash)
        ):
            try:  # a run resumed after a restart finishes on the version it started with
                return await self.exec_io(
                    functools.partial(load_version, prefer_current=False),
                    self.store,
                    run,
                    self.env,
                )
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
        # runs that found their recipe gone wait in the store; it is back, so they run now
        for name in added:
            self.dispatcher.wake(name)
        if not initial:
            self.dispatcher.refresh()  # an edited recipe may use other connections

    def _log_diagnostics(self, new: RecipeSet) -> None:
        """Each file's findings when they change. In a dry run, the variables that only real
        runs need are not warned about recipe by recipe: one line lists them all."""
        quiet = _UNSET_CODES if self.options.dry_run else frozenset()
        for file, diags in new.diagnostics.items():
            old = self.recipes.diagnostics.get(file)
            if diags != old:
                for d in diags:
                    if d.code not in quiet:
                        (log.error if d.is_error else log.warning)("%s", d.format())
                if old and any(d.is_error for d in old) and not any(d.is_error for d in diags):
                    log.info("%s: no errors now", file)
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
            if isinstance(r.trigger, TableTrigger | ScheduleTrigger) and self.lead.leading
        }
        for name in list(self._sources):
            trig, task = self._sources[name]
            if name not in wanted or wanted[name].trigger != trig:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                del self._sources[name]
                self.source_errors.pop(name, None)
        waits = []
        for name, recipe in wanted.items():
            if name in self._sources:
                continue  # unchanged trigger: its position and schedule are untouched
            started = asyncio.Event()
            source = (
                functools.partial(
                    run_table, recipe, self.store, self.accept_many, started, self._source_error
                )
                if isinstance(recipe.trigger, TableTrigger)
                else functools.partial(run_schedule, recipe, self.store, self.accept_many, started)
            )
            task = asyncio.get_running_loop().create_task(
                supervised(name, source), name=f"source:{name}"
            )
            task.add_done_callback(_log_crash)
            self._sources[name] = (recipe.trigger, task)
            waits.append(started.wait())
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), timeout=30)

    async def _report_backlog_forever(self) -> None:
        """Every ``backlog_log_every_s`` while runs wait: one line per recipe with runs waiting,
        how many of its backlog went out and when the rest will (``execution/progress.py``)."""
        progress = BacklogProgress()
        while True:
            await asyncio.sleep(self.options.backlog_log_every_s)
            try:
                queued = await self.exec_io(self.store.unfinished_counts)
            except Exception:  # a busy or closing store: the next count will do
                log.debug("backlog count skipped", exc_info=True)
                continue
            for line in progress.update(time.monotonic(), queued, self.held_by(queued)):
                log.info("%s", line)

    def held_by(self, recipes: Iterable[str]) -> dict[str, str]:
        """Why runs of ``recipes`` cannot go on now, for those that cannot: their recipe is not
        loaded, or a connection they use is paused (its circuit breaker, and why)."""
        paused = {
            b.connection.value: b.reason or "paused"
            for b in self.connections.breakers()
            if b.paused
        }
        out = {}
        for recipe in recipes:
            lane = self.lane_of(recipe)
            if lane is None:
                out[recipe] = "waiting: the recipe is not loaded"
                continue
            reasons = [paused[c] for c in lane.split("+") if c in paused]
            if reasons:
                out[recipe] = "paused: " + "; ".join(reasons)
        return out

    def _source_error(self, name: str, error: str | None) -> None:
        if error is None:
            self.source_errors.pop(name, None)
        else:
            self.source_errors[name] = error

    async def _watch_decisions(self) -> None:
        """Pick up what a person decided about held runs (``automations approve`` / ``discard``
        in another process): the held counts are refreshed and the recipes whose held runs were
        released read their backlog again (the released runs are ``pending`` there)."""
        while True:
            await asyncio.sleep(self.options.decisions_every_s)
            try:
                seen = await self.exec_io(decisions, self.store)
                if seen == self._decisions:
                    continue
                held = await self.exec_io(self.store.count_by_recipe, RunStatus.HELD)
            except StoreError as exc:
                log.debug("could not read the held runs: %s", exc)
                continue
            decided = [r for r, n in self.held.items() if held.get(r, 0) < n]
            self._decisions, self.held = seen, held
            for recipe in decided:
                self.dispatcher.wake(recipe)

    async def _prune_forever(self) -> None:
        """Delete finished runs past their retention, now and then (the leading node only);
        never pending or running ones. Failures are kept longer than successes."""
        opts = self.options
        while True:
            if not self.lead.leading:
                await asyncio.sleep(opts.leader_ttl_s / 3)
                continue
            try:
                removed = await self.exec_io(
                    functools.partial(
                        self.store.prune,
                        now=time.time(),
                        keep_succeeded_s=opts.keep_succeeded_s,
                        keep_failed_s=opts.keep_failed_s,
                    )
                )
            except StoreError as exc:  # tried again at the next interval
                log.warning("could not prune old runs: %s", exc)
            else:
                if removed:
                    log.info("pruned %d run(s) past their retention", removed)
            await asyncio.sleep(opts.prune_every_s)

    async def _lead_changed(self) -> None:
        await self._start_sources()  # started when this node leads, stopped when it does not

    async def _count_backlog(self) -> None:
        """Count the pending and running runs per recipe now and then, off the event loop
        (what ``/healthz`` shows as ``backlog``)."""
        while True:
            await asyncio.sleep(self.options.backlog_every_s)
            try:
                self.backlog = await self.exec_io(self.store.unfinished_counts)
            except StoreError as exc:
                log.debug("could not count the backlog: %s", exc)

    async def _watch_recipes(self, watched: tuple[int, int] | None) -> None:
        """Reload on every change to a recipe file, for as long as the runner runs: whatever
        goes wrong is logged with the files and shown in ``/healthz``, and watching goes on.

        The folder itself may go (its recipes are then dropped, as deleted files are) and come
        back, or be replaced by another (a deploy that renames a fresh checkout into place):
        every 2 s without changes its identity is checked, and a new folder is loaded and
        watched from then on."""
        gone_logged = False
        while not self._stop.is_set():
            identity = _identity(self.directory)
            if identity is None:
                if not gone_logged:
                    log.warning("recipes folder %s is gone; waiting for it", self.directory)
                    gone_logged = True
                await asyncio.sleep(1.0)
                continue
            gone_logged = False
            if identity != watched:
                watched = identity
                log.info("recipes folder %s is new: loading it", self.directory)
                await self._reload_recipes([str(self.directory)])
            try:
                async for changes in awatch(
                    self.directory,
                    debounce=50,
                    step=10,
                    recursive=True,
                    stop_event=self._stop,
                    rust_timeout=2000,
                    yield_on_timeout=True,
                ):
                    suffixes: tuple[str, ...] = RECIPE_SUFFIXES
                    if self.recipes.errors():
                        # a recipe refused for its table's header (REF001, TBL002...) loads
                        # once the table is fixed
                        suffixes = (*RECIPE_SUFFIXES, *_TABLE_SUFFIXES)
                    files = sorted({p for _, p in changes if Path(p).suffix.lower() in suffixes})
                    if files:
                        await self._reload_recipes(files)
                    if _identity(self.directory) != watched:
                        break  # removed or replaced: watch what is there now
            except Exception as exc:  # the watch itself failed (inotify limits, ...)
                log.error(
                    "watching %s for recipe changes failed (%s: %s); watching again in 1 s",
                    self.directory,
                    exc.__class__.__name__,
                    exc,
                )
                await asyncio.sleep(1.0)

    async def _reload_recipes(self, files: Sequence[str]) -> None:
        """One hot reload after changes to ``files`` (absolute paths); never raises."""
        try:
            self._apply(reload(self.recipes, self.directory, self.env, tables=self.tables))
            self.reloads += 1
            await self._start_sources()
        except Exception as exc:
            names = [display_name(Path(f)) for f in files]
            log.exception(
                "hot reload after a change to %s failed; the recipes running before keep "
                "running and the next change reloads again",
                ", ".join(names),
            )
            message = (
                f"hot reload failed unexpectedly ({exc.__class__.__name__}: {exc}); the "
                "version running before keeps running; save the file again to retry"
            )
            self.reload_errors = {
                n: (Diagnostic(n, 1, 1, Severity.ERROR, "INT001", message),) for n in names
            }
        else:
            self.reload_errors = {}

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
                    for f, ds in self._errors().items()
                },
                errors=lambda: len(self._errors()),
            )
        )
        self.health.add(
            HealthSection(
                "held",
                lambda: dict(sorted((n, c) for n, c in self.held.items() if c)),
                errors=lambda: sum(1 for c in self.held.values() if c),
            )
        )
        self.health.add(
            HealthSection(
                "tables",
                lambda: dict(sorted(self.source_errors.items())),
                errors=lambda: len(self.source_errors),
            )
        )
        self.health.add(HealthSection("in_flight", lambda: self.dispatcher.in_flight))
        self.health.add(HealthSection("reloads", lambda: self.reloads))
        # a paused connection counts as an error in the public summary: monitoring sees it
        self.health.add(
            HealthSection(
                "dispatch",
                self.dispatch_view,
                errors=lambda: sum(b.paused for b in self.connections.breakers()),
            )
        )

    def _errors(self) -> dict[str, list[Diagnostic] | tuple[Diagnostic, ...]]:
        """Errors by file: each file's latest version, then a hot reload that failed."""
        return {**self.recipes.errors(), **self.reload_errors}

    def dispatch_view(self) -> dict[str, Any]:
        """What the dispatcher knows, for ``/healthz`` and ``automations status``: per lane the
        runs executing and waiting in memory, per recipe the backlog as last counted in the
        store, and each provider connection's breaker (paused or not, why, next probe)."""
        return {
            "lanes": {
                v.lane: {"running": v.running, "queued": v.queued, "recipes": list(v.recipes)}
                for v in self.dispatcher.lanes()
            },
            "backlog": dict(sorted(self.backlog.items())),
            "connections": {
                view.connection: {
                    "state": view.state.value,
                    "reason": view.reason,
                    "paused_at": view.paused_at,
                    "probe_in_s": None if view.probe_in_s is None else round(view.probe_in_s, 1),
                    "auth_failures": view.failures,
                }
                for view in (b.view() for b in self.connections.breakers())
            },
        }


def order_key_for(run: RunRecord, recipe: Recipe | None) -> str | None:
    """The order key of ``run``: runs sharing one execute one at a time, in the order recorded.

    A recipe with a ``quo.upsert_contact`` orders its runs by the upsert's key (its
    ``externalId`` for the run's row): two runs for one contact never look it up at the same
    time, so they cannot both find nothing and both create it. Other runs keep their source's key
    (the row of a table, the row and fire time of a schedule)."""
    if recipe is not None and any(a.response_as for a in recipe.actions):
        try:
            key = upsert_key(recipe.actions, row_for(recipe, run.event))
        except Exception:  # a row its columns cannot be computed over: no upsert key
            key = None
        if key is not None:
            return f"{run.recipe}:upsert:{key}"
    return _order_key(run)


def _identity(folder: Path) -> tuple[int, int] | None:
    """The folder's device and inode (``None`` if it is not there): a folder replaced by another
    of the same name has a new identity."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


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
_PROVIDERS = {c.value: c for c in (Connection.QUO, Connection.LOOPS)}
_TABLE_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("trigger source %s stopped: %r", task.get_name(), task.exception())
