"""Trigger sources: the tasks that turn table changes and schedule fire times into inbox runs.

Each source records runs in the store (the durable inbox) *before* it remembers its own position,
so a crash in between re-produces the same events, which the inbox de-duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from watchfiles import awatch

from automations.errors import StoreError
from automations.execution.executor import new_run
from automations.model import (
    DbTableSpec,
    ExistingRows,
    Missed,
    Recipe,
    ScheduleTrigger,
    TableSpec,
    TableTrigger,
)
from automations.ports import StateStore
from automations.records import RunRecord, RunStatus, TriggerKind
from automations.runner.db_source import run_db_table
from automations.stores import MemoryStore
from automations.triggers.schedule import ScheduleClock, fire_key
from automations.triggers.table import TableBatch, TableEvent, TableReader

__all__ = [
    "Enqueue",
    "SourceErrors",
    "TableLook",
    "flooded",
    "run_schedule",
    "run_table",
    "supervised",
    "table_scope",
]

log = logging.getLogger("automations.runner")

#: Records runs durably and hands the new ones to the dispatcher; takes (run, order key) pairs
#: (what it returns is not used here). Safe to call from any thread.
Enqueue = Callable[[Sequence[tuple[RunRecord, str | None]]], object]

#: Told a recipe's source error (``None`` once it is gone): the runner shows it in ``/healthz``.
SourceErrors = Callable[[str, str | None], None]

#: After this long without a change, a last line without its newline counts as a row.
SETTLE_S = 2.0
#: The runner waits this long for a table's first look before it serves (see ``run_table``).
FIRST_LOOK_WAIT_S = 2.0
#: How long a cancelled table source waits for its look's current batch to be recorded.
STOP_WAIT_S = 30.0
#: Runs recorded per ``enqueue`` call: each is one store transaction, short enough that a
#: webhook recorded meanwhile waits milliseconds.
ENQUEUE_RUNS = 25
#: Marks of a look kept back at most while the flood brake cannot decide (see ``TableLook``).
KEEP_BACK_MARKS = 50_000
#: Skipped rows logged one by one per look; the others are counted in one line.
_PROBLEM_LINES = 20
#: A source that met a store error starts again after this long, doubling up to the most.
RESTART_S = (0.5, 30.0)


async def supervised(
    name: str,
    source: Callable[[], Awaitable[None]],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Run ``source()`` for ever: a store that fails (a database restarting, a connection cut,
    a locked file) ends one pass of the source, never the source. It is started again after a
    pause (0.5 s, doubling to 30 s while it keeps failing) and catches up from the position the
    store keeps, as after a restart: a table's remembered keys, a schedule's last fire time. No
    event is lost meanwhile (runs are recorded before the position moves) and none runs twice
    (runs are unique by recipe and event key). Any other exception is a bug: it ends the task."""
    pause = RESTART_S[0]
    loop = asyncio.get_running_loop()
    while True:
        began = loop.time()
        try:
            await source()
            return
        except StoreError as exc:
            if loop.time() - began > RESTART_S[1]:
                pause = RESTART_S[0]  # it had worked for a while: a new spell of failures
            log.warning("trigger source source:%s: %s; started again in %g s", name, exc, pause)
            await sleep(pause)
            pause = min(pause * 2, RESTART_S[1])


def table_scope(recipe: Recipe, spec: TableSpec) -> str:
    return f"table:{recipe.name}:{spec.path}"


def _report_problems(recipe: Recipe, reader: TableReader) -> None:
    for p in reader.problems[:_PROBLEM_LINES]:
        log.warning(
            "recipe %s: %s line %d: %s", recipe.name, reader.spec.path.name, p.line, p.message
        )
    more = len(reader.problems) - _PROBLEM_LINES + reader.more_problems
    if more > 0:
        log.warning(
            "recipe %s: %s: %d more rows skipped (no key, unreadable); the first %d are above",
            recipe.name,
            reader.spec.path.name,
            more,
            _PROBLEM_LINES,
        )


def _table_runs(
    recipe: Recipe, events: list[TableEvent], *, held: bool = False
) -> list[tuple[RunRecord, str | None]]:
    status = RunStatus.HELD if held else RunStatus.PENDING
    return [
        (
            replace(new_run(recipe.name, TriggerKind.TABLE, ev.dedupe_key, ev.row), status=status),
            f"{recipe.name}:{ev.key}",
        )
        for ev in events
    ]


def flooded(spec: TableSpec, reader: TableReader, count: int) -> bool:
    """Whether one scan's ``count`` runs are held: more than ``flood_limit`` (when not 0), and
    not the first activation of ``existing_rows: run`` (which asked for every row)."""
    if not spec.flood_limit or count <= spec.flood_limit:
        return False
    return not (reader.activating and spec.existing_rows is ExistingRows.RUN)


class TableLook:
    """One look at a table, batch by batch, on a worker thread: each batch's runs are recorded
    (``enqueue``, in calls of at most ``ENQUEUE_RUNS``) and then the batch is committed, so memory
    and each store transaction stay small whatever the file's size, and the store is never held
    for long by one writer (webhooks are recorded between two calls).

    The flood brake needs the look's count before its runs are recorded: batches are kept back
    (their marks not committed) until the look has more runs than ``flood_limit`` (then all of
    them are held, and the rest of the look too) or ends (then they run). A look that reads very
    many rows with few runs among them (a rewrite of a large file) cannot keep everything back:
    once ``KEEP_BACK_MARKS`` marks wait, the runs found so far (at most ``flood_limit``) are
    recorded ``pending`` and the brake goes on counting from there."""

    def __init__(
        self,
        recipe: Recipe,
        reader: TableReader,
        enqueue: Enqueue,
        *,
        keep_back: int = KEEP_BACK_MARKS,
    ) -> None:
        self.recipe = recipe
        self.reader = reader
        self.enqueue = enqueue
        self.keep_back = keep_back
        #: Set to stop a look between two batches (the source was cancelled: hot reload, stop).
        self.stop = threading.Event()

    def __call__(self, settled: bool) -> None:
        spec, reader = self.reader.spec, self.reader
        kept: list[TableBatch] = []
        marks = count = held_count = 0
        # decided once the look has more runs than the limit, or at once when it cannot
        held: bool | None = None
        for batch in reader.scan_batches(settled=settled):
            count += len(batch.events)
            if held is None and flooded(spec, reader, count):
                held = True
            elif held is None and not flooded(spec, reader, 1 << 62):
                held = False  # the brake cannot hold this look (off, or existing_rows: run)
            if held is None:
                kept.append(batch)
                marks += len(batch.changes)
                if not (batch.last or marks >= self.keep_back):
                    continue
                batches, kept, marks = kept, [], 0
                self._record(batches, held=False)
            else:
                batches, kept = [*kept, batch], []
                if held:
                    held_count += sum(len(b.events) for b in batches)
                self._record(batches, held=held)
            if self.stop.is_set():
                break
        _report_problems(self.recipe, reader)
        if reader.activating and reader.activated:
            log.info(
                "recipe %s: first look at %s done: %s",
                self.recipe.name,
                spec.path.name,
                f"{count} rows there recorded to run (existing_rows: run)"
                if spec.existing_rows is ExistingRows.RUN
                else "the rows there are recorded as seen, without runs (existing_rows: skip); "
                "rows added from now on run",
            )
        if held_count:
            early = count - held_count
            log.warning(
                "recipe %s: one look at %s found %d rows to run, more than its flood_limit of "
                "%d: %s; `automations approve --recipe %s` runs them, "
                "`automations discard --recipe %s` drops them",
                self.recipe.name,
                spec.path.name,
                count,
                spec.flood_limit,
                "recorded as held, nothing sent"
                if not early
                else f"the last {held_count} recorded as held, nothing sent for them (the "
                f"first {early} were found among more than {self.keep_back} rows read before "
                "the brake could tell, and run)",
                self.recipe.name,
                self.recipe.name,
            )

    def _record(self, batches: list[TableBatch], *, held: bool) -> None:
        for batch in batches:
            for start in range(0, len(batch.events), ENQUEUE_RUNS):
                part = batch.events[start : start + ENQUEUE_RUNS]
                self.enqueue(_table_runs(self.recipe, part, held=held))
            self.reader.commit_batch(batch)


async def run_table(
    recipe: Recipe,
    state: StateStore,
    enqueue: Enqueue,
    started: asyncio.Event,
    report: SourceErrors = lambda name, error: None,
) -> None:
    """Watch a table trigger's file for ever: new rows (and changed rows, with ``updated``) run.

    A look with more runs than ``flood_limit`` records them ``held`` (logged once per look); a
    file that cannot be used is reported (``report``) and logged once, until it changes.
    ``started`` is set once the first look (the first activation) is done, or after
    ``FIRST_LOOK_WAIT_S`` if it takes longer (a large table): the runner then starts serving
    while the look goes on; rows written meanwhile are read by it as if they had been there."""
    assert isinstance(recipe.trigger, TableTrigger)
    if isinstance(recipe.trigger.table, DbTableSpec):  # a SQLite or PostgreSQL table
        await run_db_table(recipe, state, enqueue, started, report)
        return
    spec = recipe.trigger.table
    reader = TableReader(spec, state, table_scope(recipe, spec))
    look = TableLook(recipe, reader, enqueue)
    shown: list[str | None] = [None]

    def scan(settled: bool) -> None:
        look(settled)
        if reader.error != shown[0]:
            shown[0] = reader.error
            report(recipe.name, reader.error)
            if reader.error is not None:
                log.error("recipe %s: %s", recipe.name, reader.error)
            else:
                log.info("recipe %s: %s can be read again", recipe.name, spec.path.name)

    # a look reads the file and the store: on a thread, so that a large file, a slow disk or a
    # locked database never holds up the event loop (webhooks, /healthz); ``enqueue`` is safe
    # to call from there
    current: asyncio.Future[None] = asyncio.ensure_future(asyncio.to_thread(scan, False))
    try:
        await asyncio.wait({current}, timeout=FIRST_LOOK_WAIT_S)  # the first activation
        started.set()
        await current
        while not spec.path.parent.is_dir():  # a folder that does not exist yet cannot be watched
            await asyncio.sleep(1.0)
        # watchfiles wakes us within milliseconds of a write; the timeout gives a quiet file its
        # "settled" scan (a last line without a newline counts) and covers missed notifications
        async for changes in awatch(
            spec.path.parent,
            debounce=50,
            step=10,
            recursive=False,
            rust_timeout=int(SETTLE_S * 1000),
            yield_on_timeout=True,
        ):
            if not changes:
                current = asyncio.ensure_future(asyncio.to_thread(scan, True))
            elif any(Path(p) == spec.path for _, p in changes):
                current = asyncio.ensure_future(asyncio.to_thread(scan, False))
            else:
                continue
            await current
    finally:
        # cancelled (hot reload, stop): a look still running on its thread ends after its
        # current batch; wait for that, so that nothing writes to the store after the source
        # is gone
        look.stop.set()
        if not current.done():
            with contextlib.suppress(BaseException):
                await asyncio.wait({current}, timeout=STOP_WAIT_S)


def _fire_row(trigger: ScheduleTrigger, fire: datetime) -> dict[str, str]:
    local = fire.astimezone(ZoneInfo(trigger.timezone))
    return {"fired_at": local.isoformat(timespec="seconds"), "fired_date": local.date().isoformat()}


def _schedule_runs(
    recipe: Recipe, trigger: ScheduleTrigger, fire: datetime
) -> list[tuple[RunRecord, str | None]]:
    key = fire_key(fire)
    row = _fire_row(trigger, fire)
    if trigger.table is None:
        return [(new_run(recipe.name, TriggerKind.SCHEDULE, key, row), None)]
    # every row of the table, read whole at the fire time
    spec = replace(trigger.table, existing_rows=ExistingRows.RUN, run_on_updated=False)
    reader = TableReader(spec, MemoryStore(), "schedule-table")
    events = reader.scan(settled=True)
    _report_problems(recipe, reader)
    if reader.error is not None:
        log.error("recipe %s: %s; this fire time runs no rows", recipe.name, reader.error)
    return [
        (
            new_run(recipe.name, TriggerKind.SCHEDULE, f"{key}:{ev.key}", {**ev.row, **row}),
            f"{recipe.name}:{ev.key}",
        )
        for ev in events
    ]


def _recorded(state: StateStore, scope: str, recipe: Recipe) -> datetime | None:
    raw = state.get_state(scope, "last_fired")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).astimezone(UTC)
    except (TypeError, ValueError):
        log.warning("recipe %s: unreadable last fire time %r; resuming from now", recipe.name, raw)
        return None


async def run_schedule(
    recipe: Recipe,
    state: StateStore,
    enqueue: Enqueue,
    started: asyncio.Event,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Fire a schedule for ever: each fire time once (also across restarts).

    The position is the last fire time handled (run, or dropped as missed), recorded after the
    runs it produced. Each turn reads the clock once, handles every fire time between the
    position and that reading (``ScheduleClock.due``: on time ones run, missed ones follow the
    trigger's ``missed`` policy), then sleeps until the first fire time after the position: a
    boundary crossed while the turn ran is simply due on the next turn, never skipped.

    A position later than the clock (the clock was set back) is logged and replaced by "now", as
    on first activation: nothing fires twice (fire times are the runs' dedupe keys) and nothing
    waits for the clock to catch up with the old mark.
    """
    assert isinstance(recipe.trigger, ScheduleTrigger)
    trigger = recipe.trigger
    clock = ScheduleClock(trigger)
    scope = f"schedule:{recipe.name}"
    last = _recorded(state, scope, recipe)
    started.set()
    while True:
        current = now()
        if last is not None and last > current:
            log.warning(
                "recipe %s: its last fire time %s is later than the clock (%s); the clock was "
                "set back: resuming from now",
                recipe.name,
                fire_key(last),
                fire_key(current),
            )
            last = None
        fires = clock.due(last, current)
        gone = None if last is None else clock.missed(last, current)
        if gone is not None:
            late = trigger.missed is Missed.RUN_ONCE and gone[1] in fires
            log.warning(
                "recipe %s: fire times %s to %s were missed (the runner was down or stalled); %s",
                recipe.name,
                fire_key(gone[0]),
                fire_key(gone[1]),
                "the latest runs now (missed: run_once)"
                if late
                else f"they are skipped (missed: {trigger.missed.value})",
            )
        for fire in fires:
            enqueue(_schedule_runs(recipe, trigger, fire))
        handled = clock.latest_at_or_before(current)
        if handled is not None and (last is None or handled > last):
            state.set_state(scope, [("last_fired", handled.isoformat())])
            last = handled
        upcoming = clock.next_after(current if last is None else last)
        wait = (upcoming - now()).total_seconds()
        await sleep(min(max(wait, 0.0), 60.0))
