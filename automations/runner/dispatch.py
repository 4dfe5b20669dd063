"""Execution of the runs waiting in the inbox: fair, bounded, and read from the store in pages.

The store is the queue: a run waits there ``pending`` from the moment its event is recorded.
The dispatcher decides which run executes next; it never holds the whole backlog.

- **Lanes.** Each recipe belongs to a lane, named by the provider connections its actions use
  (``loops``, ``quo``, ``loops+quo``, ``http``, ``none``). Each lane has ``concurrency`` slots of
  its own, so runs waiting for one connection's rate limit (one provider key), or held by its
  paused breaker, never take a slot from another lane: a Quo SMS does not wait behind a Loops
  backlog.
- **Turns.** Within a lane, recipes take turns for each free slot (round robin), so one recipe's
  backlog of thousands does not starve another recipe's single event.
- **Order keys.** Runs that share an order key (the same row of the same recipe) execute one at a
  time, in the order recorded; the others of the recipe go ahead meanwhile.
- **Pages.** Per recipe, at most ``window`` runs are in memory. The newest runs are handed over
  as they are recorded (``notify``, or ``take`` for runs the runner claimed as it recorded them,
  as many as ``room`` said) while the recipe's queue has room; beyond that, the runs stay in the
  store and are read in pages (``read(recipe, after, limit)``, oldest first: the runner claims
  them) as the queue empties. Memory stays flat whatever the backlog.
- **Admission.** Before a slot is given, ``admit(lane)`` says how many runs the lane may have
  executing now (0 while a connection of the lane is paused, 1 for its probe) and when to ask
  again.
- **Outcomes.** ``execute`` returns ``DONE`` (final, or left in the store), ``DEFERRED`` (back to
  ``pending``: refused key, paused connection) or raises ``StoreError``; a deferred run or one
  hit by a store error is tried again after a backoff (0.5 s doubling to 30 s), first in its
  recipe's queue and still holding its order key, never abandoned.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field

from automations.errors import StoreError
from automations.records import RunRecord

__all__ = ["Dispatcher", "LaneView", "Outcome", "QueueView"]

log = logging.getLogger("automations.runner")

#: Runs of one recipe held in memory at most; the rest wait in the store.
WINDOW = 64
#: Backoff of a run (or a page read) hit by a store error or deferred: base and cap, seconds.
BACKOFF_S = 0.5
BACKOFF_MAX_S = 30.0


class Outcome(enum.Enum):
    """What became of a run ``execute`` was given."""

    #: Finished, or left in the store for good reason (its recipe is not loaded): let go.
    DONE = "done"
    #: Back to ``pending`` (its key was refused or its connection is paused): try it again.
    DEFERRED = "deferred"


Execute = Callable[[RunRecord], Awaitable[Outcome]]
#: ``read(recipe, after, limit)``: unfinished runs of ``recipe`` recorded after run ``after``.
Read = Callable[[str, str | None, int], Awaitable[list[RunRecord]]]
#: ``admit(lane) -> (how many may execute now, seconds until asking again or None)``.
Admit = Callable[[str], tuple[int, float | None]]


@dataclass(eq=False, slots=True)
class _Entry:
    run: RunRecord
    key: str | None
    tries: int = 0


@dataclass(eq=False, slots=True)
class _Queue:
    """One recipe's runs in memory, and where its backlog in the store continues."""

    name: str
    lane: str | None = None
    ready: deque[_Entry] = field(default_factory=deque)
    #: The entry allowed to run for each busy order key, and the ones waiting behind it.
    owner: dict[str, _Entry] = field(default_factory=dict)
    chains: dict[str, deque[_Entry]] = field(default_factory=dict)
    #: Entries in memory, whatever their state (ready, chained, executing, backing off).
    held: int = 0
    #: The store holds runs of this recipe after ``cursor`` that are not in memory.
    more: bool = False
    cursor: str | None = None
    reading: bool = False
    #: A run was recorded while a page was being read: read again before trusting "no more".
    dirty: bool = False


@dataclass(eq=False, slots=True)
class _Lane:
    name: str
    rotation: deque[str] = field(default_factory=deque)
    active: int = 0
    timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True, slots=True)
class LaneView:
    """A lane as ``/healthz`` and ``automations status`` show it."""

    lane: str
    #: Runs executing now.
    running: int
    #: Runs in memory waiting for a slot (the rest of the backlog is in the store).
    queued: int
    #: Recipes with runs waiting in this lane.
    recipes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueueView:
    recipe: str
    lane: str | None
    #: Runs of the recipe in memory (ready, waiting for their order key, executing, backing off).
    in_memory: int
    #: Whether more of its backlog waits in the store.
    more_in_store: bool


class Dispatcher:
    def __init__(
        self,
        execute: Execute,
        read: Read,
        *,
        lane_of: Callable[[str], str | None],
        order_key_of: Callable[[RunRecord], str | None],
        admit: Admit | None = None,
        concurrency: int = 8,
        window: int = WINDOW,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._execute = execute
        self._read = read
        #: The lane of a recipe; ``None`` while it is not loaded (its runs wait in the store).
        self._lane_of = lane_of
        self._order_key_of = order_key_of
        self._admit = admit
        self.concurrency = concurrency
        self.window = max(2, window)
        #: Awaited before each run starts (``IntakePressure.wait``: webhooks first in a burst).
        self._gate = gate
        self._queues: dict[str, _Queue] = {}
        self._lanes: dict[str, _Lane] = {}
        self._known: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Backoff timers of deferred runs, by ``id`` of their entry.
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.closed = False
        #: Closed without finishing queued runs: a run not started yet does not start.
        self._hold = False

    # -- runs in -------------------------------------------------------------------------------

    def notify(self, run: RunRecord, order_key: str | None = None) -> None:
        """A run was just recorded ``pending``: keep it in memory if its recipe's queue has
        room and nothing of the recipe waits in the store before it; else it is read from the
        store in its turn."""
        self.notify_many([(run, order_key)])

    def notify_many(self, runs: Iterable[tuple[RunRecord, str | None]]) -> None:
        """``notify`` for runs recorded together (a table scan may record thousands)."""
        if self.closed:
            return
        touched: dict[str, _Queue] = {}
        for run, order_key in runs:
            if run.id in self._known:
                continue
            q = touched.get(run.recipe) or self._queue(run.recipe)
            touched[run.recipe] = q
            if q.more or q.reading or q.held >= self.window or self._lane_of(run.recipe) is None:
                q.more = True
                q.dirty = q.dirty or q.reading
                continue
            q.cursor = run.id
            self._add(q, run, order_key)
        for q in touched.values():
            self._schedule(q)

    def room(self, recipe: str) -> int:
        """How many runs of ``recipe`` just recorded may be handed over (``take``) now: none
        while runs of it wait in the store (they go first) or it is not loaded. Read from any
        thread: an estimate, which ``take`` never refuses for being a little off."""
        lane = self._lane_of(recipe)
        if self.closed or lane is None or (self._admit is not None and not self._admit(lane)[0]):
            return 0  # not loaded, or its connection is paused: its runs wait in the store
        q = self._queues.get(recipe)
        if q is None:
            return self.window
        if q.more or q.reading:
            return 0
        return max(0, self.window - q.held)

    def take(self, runs: Iterable[tuple[RunRecord, str | None]]) -> list[RunRecord]:
        """Runs claimed for this dispatcher as they were recorded (``room``): each is kept in
        memory, whatever the window, and executes in its turn. Returns the runs it cannot run
        (closed, or their recipe is not loaded): the caller gives them back."""
        refused: list[RunRecord] = []
        touched: dict[str, _Queue] = {}
        for run, order_key in runs:
            if run.id in self._known:
                continue
            if self.closed or self._lane_of(run.recipe) is None:
                refused.append(run)
                continue
            q = touched.get(run.recipe) or self._queue(run.recipe)
            touched[run.recipe] = q
            self._add(q, run, order_key)
        for q in touched.values():
            self._schedule(q)
        return refused

    def let_go(self, lane_name: str) -> list[RunRecord]:
        """Forget the runs of ``lane_name`` waiting in memory for a slot (not those executing or
        backing off): they wait in the store instead, and are read again in their turn (the
        lane's connection was paused: the caller gives their claims back)."""
        dropped: list[_Entry] = []
        for q in list(self._queues.values()):
            if q.lane != lane_name:
                continue
            here = list(q.ready) + [e for chain in q.chains.values() for e in chain]
            if not here:
                continue
            q.ready.clear()
            q.chains.clear()
            gone = {id(e) for e in here}
            for key, owner in list(q.owner.items()):
                if id(owner) in gone:
                    del q.owner[key]
            q.held -= len(here)
            q.more = True
            dropped.extend(here)
        lane = self._lanes.get(lane_name)
        if lane is not None:
            lane.rotation.clear()
        for entry in dropped:
            self._known.discard(entry.run.id)
        return [e.run for e in dropped]

    def wake(self, recipe: str) -> None:
        """The store may hold runs of ``recipe`` the dispatcher does not know (at start, or its
        recipe is loaded again): read its backlog from the first (the runs in memory are not
        taken twice)."""
        if self.closed:
            return
        q = self._queue(recipe)
        q.more = True
        q.cursor = None
        self._schedule(q)

    def refresh(self) -> None:
        """Recipes were reloaded: a recipe's lane may have changed."""
        for q in list(self._queues.values()):
            self._schedule(q)

    def _queue(self, recipe: str) -> _Queue:
        q = self._queues.get(recipe)
        if q is None:
            q = self._queues[recipe] = _Queue(recipe)
        return q

    def _add(self, q: _Queue, run: RunRecord, key: str | None) -> None:
        self._known.add(run.id)
        q.held += 1
        q.ready.append(_Entry(run, key))

    # -- scheduling ----------------------------------------------------------------------------

    def _schedule(self, q: _Queue) -> None:
        """Put ``q`` in its lane's rotation if it has work, start a page read if it runs low,
        and fill the lane's free slots."""
        lane_name = self._lane_of(q.name)
        if lane_name is None:
            return  # not loaded: its runs wait in the store until ``wake``
        if q.lane != lane_name:
            if q.lane is not None and q.lane in self._lanes:
                rotation = self._lanes[q.lane].rotation
                if q.name in rotation:
                    rotation.remove(q.name)
            q.lane = lane_name
        lane = self._lanes.get(lane_name)
        if lane is None:
            lane = self._lanes[lane_name] = _Lane(lane_name)
        if q.ready and q.name not in lane.rotation:
            lane.rotation.append(q.name)
        self._read_more(q)
        self._pump(lane)

    def _read_more(self, q: _Queue) -> None:
        """Start reading the next page of ``q``'s backlog when its queue runs low."""
        if q.more and not q.reading and len(q.ready) < self.window // 2 and not self.closed:
            q.reading = True
            self._spawn(self._read_page(q))

    def _pump(self, lane: _Lane) -> None:
        """Start runs of ``lane`` while it has free slots and runs ready."""
        if self.closed and self._hold:
            return
        limit, recheck = self._admit(lane.name) if self._admit else (self.concurrency, None)
        limit = min(limit, self.concurrency)
        while lane.active < limit:
            picked = self._pick(lane)
            if picked is None:
                break
            q, entry = picked
            lane.active += 1
            self._spawn(self._run(lane, q, entry))
        if lane.active >= limit and recheck is not None and lane.rotation and lane.timer is None:
            lane.timer = asyncio.get_running_loop().call_later(recheck, self._recheck, lane)

    def _recheck(self, lane: _Lane) -> None:
        lane.timer = None
        self._pump(lane)

    def _pick(self, lane: _Lane) -> tuple[_Queue, _Entry] | None:
        """The next recipe's next run that may start (round robin over the lane's recipes)."""
        rotation = lane.rotation
        for _ in range(len(rotation)):
            name = rotation.popleft()
            q = self._queues[name]
            entry = _next_ready(q)
            if q.ready:
                rotation.append(name)  # its turn comes again after the others'
            if entry is not None:
                self._read_more(q)
                return q, entry
        return None

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- executing -----------------------------------------------------------------------------

    async def _run(self, lane: _Lane, q: _Queue, entry: _Entry) -> None:
        outcome: Outcome | None = Outcome.DONE
        try:
            if self._gate is not None and not self._hold:
                await self._gate()
            if self._hold:
                outcome = None  # not started: it stays pending in the store for the next start
            else:
                outcome = await self._execute(entry.run)
        except StoreError as exc:
            outcome = Outcome.DEFERRED
            log.warning(
                "run %s: the run store failed (%s); trying again in %.1f s",
                entry.run.id[:12],
                exc,
                _backoff(entry.tries + 1),
                extra={"run_id": entry.run.id},
            )
        except asyncio.CancelledError:
            outcome = None
            raise
        except Exception:  # a bug must not stop the others; the run stays resumable
            log.exception(
                "run %s could not be executed", entry.run.id[:12], extra={"run_id": entry.run.id}
            )
        finally:
            lane.active -= 1
            self._settle(q, entry, outcome)
            self._pump(lane)

    def _settle(self, q: _Queue, entry: _Entry, outcome: Outcome | None) -> None:
        if outcome is Outcome.DEFERRED and not self.closed:
            entry.tries += 1
            self._timers[id(entry)] = asyncio.get_running_loop().call_later(
                _backoff(entry.tries), self._retry, q, entry
            )
            return
        self._known.discard(entry.run.id)
        q.held -= 1
        if entry.key is not None:
            chain = q.chains.get(entry.key)
            if chain:
                nxt = chain.popleft()
                if not chain:
                    del q.chains[entry.key]
                q.owner[entry.key] = nxt
                q.ready.appendleft(nxt)
            else:
                q.owner.pop(entry.key, None)
        if outcome is None:
            # left pending in the store: read again after a restart, or after ``wake``
            q.more = True
        self._schedule(q)

    def _retry(self, q: _Queue, entry: _Entry) -> None:
        self._timers.pop(id(entry), None)
        if self.closed:
            self._known.discard(entry.run.id)
            q.held -= 1
            return
        q.ready.appendleft(entry)  # first in its queue, still owning its order key
        self._schedule(q)

    async def _read_page(self, q: _Queue) -> None:
        tries = 0
        try:
            while not self.closed:
                room = self.window - q.held
                if room <= 0:
                    return  # ``more`` stays set: read when the queue has room again
                q.dirty = False
                try:
                    runs = await self._read(q.name, q.cursor, room)
                except StoreError as exc:
                    tries += 1
                    log.warning(
                        "recipe %s: could not read its backlog (%s); trying again in %.1f s",
                        q.name,
                        exc,
                        _backoff(tries),
                    )
                    await asyncio.sleep(_backoff(tries))
                    continue
                for run in runs:
                    q.cursor = run.id
                    if run.id not in self._known:
                        self._add(q, run, self._order_key_of(run))
                if len(runs) < room and not q.dirty:
                    q.more = False
                    return
                if len(runs) == room:
                    return
        finally:
            q.reading = False
            if not self.closed:
                self._schedule(q)

    # -- stopping ------------------------------------------------------------------------------

    def knows(self, run_id: str) -> bool:
        """Whether ``run_id`` is in memory (waiting, executing or backing off)."""
        return run_id in self._known

    @property
    def in_flight(self) -> int:
        """Runs executing now (read from any thread: ``/healthz``)."""
        return sum(lane.active for lane in list(self._lanes.values()))

    def idle(self) -> bool:
        """Nothing executing, ready, backing off or left to read."""
        return not self._known and not any(q.more or q.reading for q in self._queues.values())

    async def wait_idle(self) -> None:
        """Wait until every run known (in memory or in the store) has executed."""
        while not self.idle():
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=0.05)
            else:
                await asyncio.sleep(0.01)

    def close(self, *, finish_queued: bool = True) -> None:
        """Take no more runs. With ``finish_queued=False`` the runs waiting for a slot do not
        start either: they stay ``pending`` in the store and run on the next start, rather than
        begin sending during a shutdown that may cut them off (an SMS cut off is ``unknown``)."""
        self.closed = True
        self._hold = self._hold or not finish_queued
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
                lane.timer = None

    async def drain(self, timeout: float, *, finish_queued: bool = True) -> bool:
        """Stop taking runs (see ``close``) and wait up to ``timeout`` s for those executing
        (and, with ``finish_queued``, those in memory); ``True`` when all finished. Runs cut
        off stay ``running`` in the store and are resumed on restart."""
        self.close(finish_queued=finish_queued)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=left)
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        return not pending

    # -- what it knows -------------------------------------------------------------------------

    def lanes(self) -> list[LaneView]:
        """Every lane seen so far: runs executing, runs in memory waiting, recipes waiting.
        Read from any thread (``/healthz``): each structure is copied in one step first."""
        out = []
        every = list(self._queues.values())
        for lane in sorted(list(self._lanes.values()), key=lambda ln: ln.name):
            queues = [q for q in every if q.lane == lane.name]
            waiting = sum(len(q.ready) + sum(map(len, list(q.chains.values()))) for q in queues)
            out.append(
                LaneView(
                    lane.name,
                    lane.active,
                    waiting,
                    tuple(sorted(q.name for q in queues if q.held or q.more)),
                )
            )
        return out

    def queues(self) -> list[QueueView]:
        """Every recipe with runs in memory or in the store."""
        return [
            QueueView(q.name, q.lane, q.held, q.more)
            for q in sorted(self._queues.values(), key=lambda q: q.name)
            if q.held or q.more
        ]


def _next_ready(q: _Queue) -> _Entry | None:
    """Pop the recipe's oldest ready run whose order key is free; runs whose key is busy wait
    behind the run holding it, in order."""
    while q.ready:
        entry = q.ready.popleft()
        if entry.key is None:
            return entry
        owner = q.owner.get(entry.key)
        if owner is None:
            q.owner[entry.key] = entry
            return entry
        if owner is entry:
            return entry
        q.chains.setdefault(entry.key, deque()).append(entry)
    return None


def _backoff(tries: int) -> float:
    return float(min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, tries - 1)))
