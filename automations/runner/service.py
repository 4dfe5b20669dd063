"""The runner: recipes loaded and hot-reloaded, trigger sources started, runs claimed and executed.

Start-up order (what makes a restart lose nothing): open the store, load the recipes, give back
the runs a previous run of this node left ``running`` (a SQLite file has one node: all of
them; on PostgreSQL other nodes' leases are rescued when they expire), then wake the dispatcher
for every recipe with a backlog (it claims runs in pages), then start the trigger sources (which
catch up on table rows and schedule fire times missed while down); the webhook server comes
last (``cli/serve.py``).

Threads (what keeps the intake answering whatever executes): the webhook intake runs on an event
loop of its own (``cli/serve.py``); it records each event (and claims its run) on its own store
thread and hands the run over with ``call_soon_threadsafe``, never waiting for execution. This
runner's loop executes (dispatcher, executor, connections), watches recipes and runs the trigger
sources, with its store calls on another thread. Leases are renewed on a third (``claims``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automations.actions import ACTIONS
from automations.breaker import Breaker
from automations.connections import Connections
from automations.diagnostics import Diagnostic
from automations.errors import LeaseLost
from automations.execution.executor import Executor
from automations.execution.held import decisions
from automations.execution.pauses import Pause, clear_pauses, record_pause
from automations.execution.versions import load_version
from automations.metrics import instrument
from automations.model import Recipe
from automations.outbound import Connection
from automations.ports import Claimed, Enqueue, Lease, Store
from automations.records import RunRecord, RunStatus
from automations.runner import upkeep, watching
from automations.runner.claims import ClaimSettings, LeaseKeeper, node_name
from automations.runner.dispatch import Dispatcher, Outcome
from automations.runner.health import Health
from automations.runner.health_view import add_runner_sections, dispatch_view
from automations.runner.inbox import IntakePressure
from automations.runner.lead import Lead
from automations.runner.ordering import order_key_for
from automations.runner.registry import RecipeSet, reload
from automations.stores.leaders import leaders_for
from automations.stores.thread import Groupable, StoreThread
from automations.stores.wakeup import Wakeup, wakeup_for
from automations.triggers.table_files import TableAccess

__all__ = ["Runner", "RunnerOptions"]

log = logging.getLogger("automations.runner")
runs_log = logging.getLogger("automations.runs")

#: Run outcomes logged as warnings: someone should look at them.
_NEEDS_A_LOOK = frozenset({RunStatus.FAILED, RunStatus.UNKNOWN})

_Accepted = tuple[RunRecord, bool, Lease | None]


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
    #: Lease and claim timings (``claims.ClaimSettings``: ``AUTOMATIONS_LEASE_*``).
    claims: ClaimSettings = field(default_factory=ClaimSettings)
    #: This node's name as the owner of its leases (default: host, pid and a random part).
    node: str | None = None
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
        *,
        wake: Wakeup | None = None,
    ) -> None:
        self.directory = directory
        self.store = store
        self.env = env
        self.options = options
        self.connections = connections
        #: Store calls of execution and of the webhook intake, each on its own thread. A run's
        #: writes on SQLite commit with those of the other runs queued with them (grouped).
        group = store if isinstance(store, Groupable) else None
        self.exec_io = StoreThread("store-exec", group=group)
        self.intake_io = StoreThread("store-intake")
        self.executor = Executor(
            store, connections, env, io=self.exec_io.grouped, defer_refused=True
        )
        self.pressure = IntakePressure()
        self.dispatcher = Dispatcher(
            self._execute,
            self._claim_page,
            lane_of=self.lane_of,
            order_key_of=self._order_key_of,
            admit=self._admit,
            concurrency=options.concurrency,
            gate=self.pressure.wait,
        )
        connections.breaker_listeners.append(self._breaker_changed)
        #: This node, as the owner of its leases; the leases of the runs it holds in memory.
        self.node = options.node or node_name()
        self.claims = options.claims
        self._leases: dict[str, Lease] = {}
        self.keeper = LeaseKeeper(
            store, self.node, self.claims, rescued=self._rescued, renewed=self._renewed
        )
        #: Runs this node held at the last renewal that the dispatcher did not know.
        self._strays: set[str] = set()
        #: Wakes the claim loop before its poll when runs wait unclaimed: a NOTIFY from any node
        #: on PostgreSQL (unless ``poll_only``), else this process's own ``set()``
        #: (``stores/wakeup.py``).
        self.wakeup = wake or wakeup_for(store, poll_only=options.poll_only)
        #: Which node fires schedules, watches tables and prunes: the one holding the lead
        #: (always this one on a store one process owns). Correctness never rests on it: runs
        #: are unique by (recipe, event key); it saves doing the work twice.
        self.lead = Lead(
            leaders_for(store),
            ttl_s=options.leader_ttl_s,
            changed=self._lead_changed,
            node=self.node,
        )
        #: Pending and running runs per recipe, as last counted in the store (``/healthz``).
        self.backlog: dict[str, int] = {}
        self.recipes = RecipeSet()
        #: Told of each recipe set the runner runs from now on (the intake process's link).
        self.recipe_listeners: list[Callable[[RecipeSet], None]] = []
        self.started = False
        #: Trigger sources by recipe name: the trigger they serve and their task.
        self.sources: dict[str, tuple[Any, asyncio.Task[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._leader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        #: Lane names by recipe version (``lane_of``).
        self._lanes: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self.stopping = asyncio.Event()
        self.reloads = 0
        #: Errors of the last hot reload that failed as a whole (by display file name), until a
        #: reload succeeds; the recipes' own diagnostics are in ``recipes.diagnostics``.
        self.reload_errors: dict[str, tuple[Diagnostic, ...]] = {}
        self.tables = TableAccess.for_recipes(directory, env, options.tables_outside)
        #: Held runs per recipe (the flood brake), as the store has them; replaced whole, never
        #: changed in place (``/healthz`` reads it from the intake's thread).
        self.held: dict[str, int] = {}
        #: Why a recipe's trigger source cannot use its table, by recipe name.
        self.source_errors: dict[str, str] = {}
        self.decisions_seen = 0
        self.health = Health.from_env(env)
        add_runner_sections(self)
        #: Writes of breaker pauses to the store still in flight (kept so they are not lost).
        self._pause_writes: set[asyncio.Task[None]] = set()
        #: In a dry run, the variables last reported as not set.
        self.unset: list[str] = []
        #: ``/metrics``: counters hooked to the connections, the executor and the intake.
        self.metrics = instrument(self)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        folder = watching.folder_identity(self.directory)  # the folder these recipes come from
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await self.wakeup.start()
        self.apply_recipes(
            reload(self.recipes, self.directory, self.env, tables=self.tables), initial=True
        )
        await self.exec_io(clear_pauses, self.store)  # this runner's breakers start closed
        if not self.store.shared:
            # one node per store (a SQLite file): whatever was running was this node's
            resumed = await self.exec_io(self.store.rescue_all)
            if resumed:
                log.info("%d run(s) were cut off by the last stop: resuming them", resumed)
        self.decisions_seen = await self.exec_io(decisions, self.store)
        self.held = await self.exec_io(self.store.count_by_recipe, RunStatus.HELD)
        self.backlog = await self.exec_io(self.store.unfinished_counts)
        for recipe in self.backlog:
            self.dispatcher.wake(recipe)
        if self.backlog:
            log.info("resuming %d run(s) left unfinished", sum(self.backlog.values()))
        self.keeper.start()
        await self.lead.check()  # the sources start here when this node leads
        loop = asyncio.get_running_loop()
        self._watcher = loop.create_task(watching.watch_recipes(self, folder))
        #: Keeps (or takes) the lead while the runner runs.
        self._leader = loop.create_task(self.lead.keep())
        self._tasks = [self._leader]
        for coro in (
            upkeep.prune_forever(self),
            upkeep.count_backlog(self),
            upkeep.report_backlog_forever(self),
            upkeep.watch_decisions(self),
            upkeep.watch_loop_lag(self),
            upkeep.hold_frozen(self),
            self._claim_forever(),
        ):
            self._tasks.append(loop.create_task(coro))
        self.started = True

    async def stop(self) -> None:
        """Stop taking events, let the runs already executing finish (bounded by ``grace_s``),
        then give back the runs held with nothing in flight (another node, or the next start,
        continues them at once); a run cut off mid-send keeps its lease until it expires."""
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        for _, task in self.sources.values():
            task.cancel()
        tasks = [t for _, t in self.sources.values()]
        if self._watcher is not None:
            tasks.append(self._watcher)
        await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
        await self.lead.resign()
        await self.wakeup.aclose()
        finished = await self.dispatcher.drain(self.options.grace_s, finish_queued=False)
        if not finished:
            log.warning("stopped with runs in flight; they resume on the next start")
        await asyncio.to_thread(self.keeper.stop)
        try:
            released = await self.exec_io(self.store.release_idle, self.node)
        except Exception as exc:  # their leases expire and are rescued instead
            log.warning("could not give back this runner's runs: %s", exc)
        else:
            if released:
                log.info("gave back %d run(s) not finished here", released)
        # the calls already made complete (a write is never cut in half)
        await asyncio.to_thread(self.intake_io.close)
        await asyncio.to_thread(self.exec_io.close)
        await asyncio.to_thread(self.lead.close)

    async def _lead_changed(self) -> None:
        # the sources start when this node leads, and stop when it does not
        await watching.start_sources(self)

    def apply_recipes(self, new: RecipeSet, *, initial: bool = False) -> None:
        """Run ``new`` from now on (``watching.apply_recipe_set``)."""
        watching.apply_recipe_set(self, new, initial=initial)

    # -- events in ---------------------------------------------------------------------------

    def accept_many(
        self, items: Sequence[tuple[RunRecord, str | None]]
    ) -> list[tuple[RunRecord, bool]]:
        """Record runs durably in one commit, claiming those the dispatcher has room for, and
        hand them over (the trigger sources' callback). Called on any thread: the table sources
        scan on worker threads; the dispatcher hears of the new runs on its event loop."""
        entries = self._entries(items)
        results = self._enqueue(entries)
        self._hand_over(results, entries)
        return [(stored, new) for stored, new, _ in results]

    async def accept_batch(
        self, items: Sequence[tuple[RunRecord, str | None]]
    ) -> list[tuple[RunRecord, bool]]:
        """``accept_many`` with the commit made on the intake's store thread (the webhook
        intake's callback, through ``GroupCommit``, on the intake's own event loop)."""
        entries = self._entries(items)
        results = await self.intake_io(self._enqueue, entries)
        self._hand_over(results, entries)
        return [(stored, new) for stored, new, _ in results]

    def _entries(self, items: Sequence[tuple[RunRecord, str | None]]) -> list[Enqueue]:
        """Each run with its order key and whether to claim it now: while its recipe's queue in
        memory has room and nothing of the recipe waits in the store before it (else it waits
        its turn in the store, and the dispatcher claims it when it has room)."""
        rooms: dict[str, int] = {}
        entries: list[Enqueue] = []
        for run, key in items:
            room = rooms.get(run.recipe)
            if room is None:
                room = self.dispatcher.room(run.recipe)
            rooms[run.recipe] = room - 1
            entries.append((run, self._notify_key(run, key), room > 0))
        return entries

    def _enqueue(self, entries: list[Enqueue]) -> list[_Accepted]:
        results = self.store.enqueue_claimed(entries, self.node, ttl_s=self.claims.ttl_s)
        if any(
            new and lease is None and r.status is RunStatus.PENDING for r, new, lease in results
        ):
            # committed, not claimed here: wake the other nodes (a hint; a no-op on a store
            # of one process)
            self.store.notify_pending()
        return results

    def _hand_over(self, results: list[_Accepted], entries: list[Enqueue]) -> None:
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._dispatch(results, entries)
        else:
            loop.call_soon_threadsafe(self._dispatch, results, entries)

    def _dispatch(self, results: list[_Accepted], entries: list[Enqueue]) -> None:
        claimed: list[tuple[RunRecord, str | None]] = []
        waiting: set[str] = set()
        held: dict[str, int] = {}
        for (stored, is_new, lease), (_, key, _) in zip(results, entries, strict=True):
            if not is_new:
                continue
            if lease is not None:
                self._leases[stored.id] = lease
                claimed.append((stored, key))
            elif stored.status is RunStatus.PENDING:
                waiting.add(stored.recipe)
            elif stored.status is RunStatus.HELD:  # waits for a person (approve / discard)
                held[stored.recipe] = held.get(stored.recipe, 0) + 1
        if held:
            merged = dict(self.held)
            for recipe, n in held.items():
                merged[recipe] = merged.get(recipe, 0) + n
            self.held = merged
        for run in self.dispatcher.take(claimed):  # not loaded here: given back
            self._give_back(run.id)
        for recipe in waiting:
            self.dispatcher.wake(recipe)

    def take_claims(self, claimed: Sequence[Claimed]) -> dict[str, int]:
        """Runs claimed for this node outside the claim loop (the intake's inbox moved and
        claimed in one transaction) to the dispatcher; those it cannot run now are given back.
        Returns how many per recipe it was handed."""
        taken: dict[str, int] = {}
        for c in claimed:
            self._leases[c.run.id] = c.lease
            taken[c.run.recipe] = taken.get(c.run.recipe, 0) + 1
        items = [(c.run, self._order_key_of(c.run)) for c in claimed]
        for run in self.dispatcher.take(items):  # not loaded here now: given back
            self._give_back(run.id)
        return taken

    async def _claim_page(self, recipe: str, after: str | None, limit: int) -> list[RunRecord]:
        """The dispatcher's page of ``recipe``'s backlog: up to ``limit`` runs claimed (none
        while its connection is paused: they wait in the store, ``pending``)."""
        lane = self.lane_of(recipe)
        if lane is None or not self._admit(lane)[0]:
            return []
        claimed = await self.exec_io(
            functools.partial(
                self.store.claim_ready,
                self.node,
                ttl_s=self.claims.ttl_s,
                limit=limit,
                recipe=recipe,
            )
        )
        for c in claimed:
            self._leases[c.run.id] = c.lease
        return [c.run for c in claimed]

    async def _claim_forever(self) -> None:
        """Every ``poll_s``, or when woken: wake the dispatcher for each recipe with runs no
        node claimed (a node that stopped, a source that recorded more than its room, a
        deferred run ready again); it claims them as it has room."""
        while True:
            self.keeper.beat()
            await self.wakeup.wait(self.claims.poll_s)
            try:
                recipes = await self.exec_io(self.store.ready_recipes)
            except Exception as exc:  # the next poll tries again
                log.debug("could not look for runs to claim: %s", exc)
                continue
            for recipe in recipes:
                if self.lane_of(recipe) is not None:
                    self.dispatcher.wake(recipe)

    def _rescued(self, runs: dict[str, int]) -> None:
        """Runs of a stopped node are ready again (``LeaseKeeper``'s thread): claim them now."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wakeup.set)

    def _renewed(self, held: dict[str, int]) -> None:
        """A renewal kept ``held`` (``LeaseKeeper``'s thread): check them on the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._check_strays, held)

    def _check_strays(self, held: dict[str, int]) -> None:
        """A run this node holds must be in its dispatcher, or nobody would ever run it (held
        and renewed forever). One held but unknown at two renewals in a row (not a claim on
        its way to the dispatcher) is given back."""
        if self.dispatcher.closed:
            return
        strays = {r for r in held if not self.dispatcher.knows(r)}
        for run_id in strays & self._strays:
            log.warning("run %s was held here but not queued: given back", run_id[:12])
            lease = self._leases.get(run_id) or Lease(run_id, self.node, held[run_id])
            self._leases[run_id] = lease
            self._give_back(run_id)
        self._strays = strays - self._strays

    def _give_back(self, run_id: str, hold_s: float = 0.0) -> None:
        """Release the claim of a run this node will not execute now (its recipe is not loaded
        here, its connection is paused): ready again for any node at once. This node claims
        only for recipes it has loaded and connections that work, so it does not take it
        back in a loop."""
        lease = self._leases.pop(run_id, None)
        if lease is not None:
            task = asyncio.get_running_loop().create_task(self._release(lease, hold_s))
            self._pause_writes.add(task)
            task.add_done_callback(self._pause_writes.discard)

    async def _release(self, lease: Lease, hold_s: float) -> None:
        try:
            await self.exec_io(
                functools.partial(self.store.release, lease, available_at=time.time() + hold_s)
            )
        except Exception as exc:  # its lease expires and is rescued instead
            log.warning("could not give back run %s: %s", lease.run_id[:12], exc)

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
        if breaker.paused:
            # the runs claimed for its lanes would only wait: back to the store, ``pending``
            name = breaker.view().connection
            for lane in self.dispatcher.lanes():
                if name in lane.lane.split("+"):
                    for run in self.dispatcher.let_go(lane.lane):
                        self._give_back(run.id)
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
        lease = self._leases.get(run.id)
        if lease is None:  # deferred before (its lease given back), or tried again
            claimed = await self.exec_io.grouped(
                functools.partial(self.store.claim_run, run.id, self.node, ttl_s=self.claims.ttl_s)
            )
            if claimed is None:
                return Outcome.DONE  # finished, or another node has it now
            lease = self._leases[run.id] = claimed.lease
        try:
            recipe = await self._recipe_for(run)
            if recipe is None:
                log.warning(
                    "run %s waits: recipe %s is not loaded (it runs when the recipe is back)",
                    run.id[:12],
                    run.recipe,
                    extra={"run_id": run.id},
                )
                self._give_back(run.id)
                return Outcome.DONE
            started = time.perf_counter()
            final = await self.executor.execute(
                run, recipe, dry_run=self.options.dry_run, lease=lease
            )
        except LeaseLost as exc:
            if run.id in self._leases:
                # this node claimed the run again meanwhile (its lease had expired and was
                # rescued): execute it under the new lease, which applies the resume rule
                return Outcome.DEFERRED
            log.warning("run %s: %s", run.id[:12], exc, extra={"run_id": run.id})
            return Outcome.DONE
        finally:
            if self._leases.get(run.id) is lease:
                del self._leases[run.id]
        _log_run(final, (time.perf_counter() - started) * 1000)
        return Outcome.DEFERRED if final.status is RunStatus.PENDING else Outcome.DONE

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

    # -- reports -----------------------------------------------------------------------------

    def dispatch_view(self) -> dict[str, Any]:
        """What the dispatcher knows (``health_view.dispatch_view``): ``/healthz``, the console."""
        return dispatch_view(self)

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


def _log_run(final: RunRecord, ms: float) -> None:
    """One line per run outcome (``automations.runs``); a deferred run says why it waits."""
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
        return
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


_PROVIDERS = {c.value: c for c in (Connection.QUO, Connection.LOOPS)}
