"""Trigger sources: the tasks that turn table changes and schedule fire times into inbox runs.

Each source records runs in the store (the durable inbox) *before* it remembers its own position,
so a crash in between re-produces the same events, which the inbox de-duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from watchfiles import awatch

from automations.execution.executor import new_run
from automations.model import ExistingRows, Recipe, ScheduleTrigger, TableSpec, TableTrigger
from automations.ports import StateStore
from automations.records import RunRecord, TriggerKind
from automations.stores import MemoryStore
from automations.triggers.schedule import ScheduleClock, fire_key
from automations.triggers.table import TableEvent, TableReader

__all__ = ["Enqueue", "run_schedule", "run_table", "table_scope"]

log = logging.getLogger("automations.runner")

#: Records runs durably and hands the new ones to the dispatcher; takes (run, order key) pairs
#: (what it returns is not used here).
Enqueue = Callable[[Sequence[tuple[RunRecord, str | None]]], object]

#: After this long without a change, a last line without its newline counts as a row.
SETTLE_S = 2.0


def table_scope(recipe: Recipe, spec: TableSpec) -> str:
    return f"table:{recipe.name}:{spec.path}"


def _report_problems(recipe: Recipe, reader: TableReader) -> None:
    for p in reader.problems:
        log.warning(
            "recipe %s: %s line %d: %s", recipe.name, reader.spec.path.name, p.line, p.message
        )


def _table_runs(recipe: Recipe, events: list[TableEvent]) -> list[tuple[RunRecord, str | None]]:
    return [
        (new_run(recipe.name, TriggerKind.TABLE, ev.dedupe_key, ev.row), f"{recipe.name}:{ev.key}")
        for ev in events
    ]


async def run_table(
    recipe: Recipe, state: StateStore, enqueue: Enqueue, started: asyncio.Event
) -> None:
    """Watch a table trigger's file for ever: new rows (and changed rows, with ``updated``) run."""
    assert isinstance(recipe.trigger, TableTrigger)
    spec = recipe.trigger.table
    reader = TableReader(spec, state, table_scope(recipe, spec))

    def scan(settled: bool) -> None:
        events = reader.scan(settled=settled)
        _report_problems(recipe, reader)
        if events:
            enqueue(_table_runs(recipe, events))
            reader.commit(events)

    events = reader.activate()
    _report_problems(recipe, reader)
    if events:
        enqueue(_table_runs(recipe, events))
        reader.commit(events)
    started.set()
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
            scan(settled=True)
        elif any(Path(p) == spec.path for _, p in changes):
            scan(settled=False)


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
    return [
        (
            new_run(recipe.name, TriggerKind.SCHEDULE, f"{key}:{ev.key}", {**ev.row, **row}),
            f"{recipe.name}:{ev.key}",
        )
        for ev in events
    ]


async def run_schedule(
    recipe: Recipe,
    state: StateStore,
    enqueue: Enqueue,
    started: asyncio.Event,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Fire a schedule for ever: each fire time once (also across restarts)."""
    assert isinstance(recipe.trigger, ScheduleTrigger)
    trigger = recipe.trigger
    clock = ScheduleClock(trigger)
    scope = f"schedule:{recipe.name}"
    raw = state.get_state(scope, "last_fired")
    last = datetime.fromisoformat(raw) if raw else None
    if last is None:
        # first activation: remember "now" so that a later downtime counts as missed
        first = clock.latest_at_or_before(now())
        due = clock.due(None, now())
        if not due and first is not None:
            state.set_state(scope, [("last_fired", first.isoformat())])
            last = first
    started.set()
    while True:
        current = now()
        for fire in clock.due(last, current):
            enqueue(_schedule_runs(recipe, trigger, fire))
            state.set_state(scope, [("last_fired", fire.isoformat())])
            last = fire
        wait = (clock.next_after(now()) - now()).total_seconds()
        await asyncio.sleep(min(max(wait, 0.01), 60.0))
