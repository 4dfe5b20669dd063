"""The source task of a database table trigger: a look at the table every ``poll`` seconds.

Each look (``DbTableReader.look``) is made on a worker thread, page by page; a page's runs are
recorded in the store (``enqueue``) before its state is, so a crash re-produces the same runs,
which the inbox de-duplicates. The flood brake counts per look, as for files: the first
``flood_limit`` runs wait in memory until the look either ends (they run) or finds one more (every
run of that look is recorded ``held``); past that, pages are recorded as they come, so a look at a
table of any size keeps only one page in memory.

PostgreSQL wakes the task early when the table has the trigger ``automations db notify-sql``
prints (``LISTEN automations_tables``); polling stays the mechanism that guarantees every change
is seen, a notification only makes it sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from automations.errors import TableDatabaseError
from automations.execution.executor import new_run
from automations.model import DbTableSpec, ExistingRows, Recipe, TableTrigger
from automations.ports import StateStore
from automations.records import RunRecord, RunStatus, TriggerKind
from automations.triggers.table import TableEvent
from automations.triggers.table_db import (
    NOTIFY_CHANNEL,
    Database,
    TableConnection,
    resolve_database,
    shown_database,
)
from automations.triggers.table_db_reader import DbTableReader, Page

__all__ = ["db_table_scope", "run_db_table"]

log = logging.getLogger("automations.runner")

#: How long the runner's start waits for a first look before it goes on (the look goes on too),
#: as for files (``sources.FIRST_LOOK_WAIT_S``).
FIRST_LOOK_WAIT_S = 2.0
#: Runs recorded per ``enqueue`` call: each is one store transaction, short enough that a
#: webhook recorded meanwhile waits milliseconds (as for files: ``sources.ENQUEUE_RUNS``).
ENQUEUE_RUNS = 25


def db_table_scope(recipe: Recipe, spec: DbTableSpec) -> str:
    """Where the trigger's positions are kept: per recipe, database (as shown: a new password is
    the same database) and table or query."""
    source = spec.table or "query:" + hashlib.sha256((spec.query or "").encode()).hexdigest()[:16]
    return f"table:{recipe.name}:{shown_database(spec.database)}#{source}"


def _runs(
    recipe: Recipe, events: Sequence[TableEvent], held: bool
) -> list[tuple[RunRecord, str | None]]:
    status = RunStatus.HELD if held else RunStatus.PENDING
    return [
        (
            replace(new_run(recipe.name, TriggerKind.TABLE, ev.dedupe_key, ev.row), status=status),
            f"{recipe.name}:{ev.key}",
        )
        for ev in events
    ]


class _Look:
    """One look: pages in, runs out, with the flood brake (see the module docstring)."""

    def __init__(self, recipe: Recipe, reader: DbTableReader, enqueue: Any) -> None:
        self.recipe = recipe
        self.reader = reader
        self.enqueue = enqueue
        self.held: bool | None = None
        self.buffer: list[Page] = []
        self.count = 0
        self.found = 0

    def run(self) -> int:
        spec = self.reader.spec
        for page in self.reader.look():
            self.reader.commit(page.quiet)
            if not page.events:
                continue
            self.found += len(page.events)
            if self.held is not None:
                self._record([page])
                continue
            exempt = self.reader.activating and spec.existing_rows is ExistingRows.RUN
            if not spec.flood_limit or exempt:
                self.held = False
                self._record([page])
                continue
            self.buffer.append(page)
            self.count += len(page.events)
            if self.count > spec.flood_limit:
                self.held = True
                self._log_held()
                self._record(self.buffer)
                self.buffer = []
        if self.buffer:
            self.held = False
            self._record(self.buffer)
        self.reader.finish()
        return self.found

    def _record(self, pages: list[Page]) -> None:
        held = bool(self.held)
        events = [event for page in pages for event in page.events]
        runs = _runs(self.recipe, events, held)
        for start in range(0, len(runs), ENQUEUE_RUNS):
            self.enqueue(runs[start : start + ENQUEUE_RUNS])
        for page in pages:
            self.reader.commit(page.event_state)

    def _log_held(self) -> None:
        name, spec = self.recipe.name, self.reader.spec
        log.warning(
            "recipe %s: one look at %s found more than its flood_limit of %d rows to run: "
            "recorded as held, nothing sent; `automations approve --recipe %s` runs them, "
            "`automations discard --recipe %s` drops them",
            name,
            self.reader.conn.name,
            spec.flood_limit,
            name,
            name,
        )


class Wakeups:
    """``LISTEN automations_tables`` on a PostgreSQL database, on the event loop (an
    asynchronous connection: no thread waits): ``wait`` returns early when a notification
    arrives. Any failure falls back to plain waiting (polling)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Any = None
        self._failed = db.kind != "postgres"

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; ``True`` when woken by a notification."""
        if self._failed:
            await asyncio.sleep(timeout)
            return False
        try:
            if self._conn is None:
                import psycopg

                self._conn = await psycopg.AsyncConnection.connect(
                    self.db.target, autocommit=True, connect_timeout=10
                )
                await self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            async for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except Exception as exc:
            log.info(
                "database %s: no LISTEN wake-ups (%s); polling",
                self.db.shown,
                self.db.problem(exc),
            )
            await self.close()
            self._failed = True
            await asyncio.sleep(timeout)
            return False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


async def run_db_table(
    recipe: Recipe,
    state: StateStore,
    enqueue: Any,
    started: asyncio.Event,
    report: Any = lambda name, error: None,
    *,
    env: Mapping[str, str] | None = None,
) -> None:
    """Watch a database table trigger for ever (see the module docstring). A database that cannot
    be read is reported (``report``) and logged once, and tried again at every poll."""
    assert isinstance(recipe.trigger, TableTrigger)
    spec = recipe.trigger.table
    assert isinstance(spec, DbTableSpec)
    env = os.environ if env is None else env
    scope = db_table_scope(recipe, spec)
    shown: list[str | None] = [None]
    parts: dict[str, Any] = {}

    def setup() -> DbTableReader:
        reader = parts.get("reader")
        if reader is None:
            db = resolve_database(spec.database, env)
            conn = TableConnection(db, table=spec.table, query=spec.query)
            reader = parts["reader"] = DbTableReader(spec, conn, state, scope)
            parts["wakeups"] = Wakeups(db)
        assert isinstance(reader, DbTableReader)
        return reader

    def look() -> None:
        error: str | None = None
        try:
            reader = setup()
            _Look(recipe, reader, enqueue).run()
            if reader.problems:
                log.warning(
                    "recipe %s: %d row(s) of %s skipped: %s",
                    recipe.name,
                    len(reader.problems),
                    reader.conn.name,
                    reader.problems[0].message,
                )
        except TableDatabaseError as exc:
            error = str(exc)
        except Exception as exc:  # a store fault, a bug: the next poll tries again
            db = getattr(parts.get("reader"), "conn", None)
            why = db.db.problem(exc) if isinstance(db, TableConnection) else type(exc).__name__
            error = f"looking at {spec.table or 'the query'} failed ({type(exc).__name__}: {why})"
        if error != shown[0]:
            shown[0] = error
            report(recipe.name, error)
            if error is not None:
                log.error("recipe %s: %s", recipe.name, error)
            else:
                log.info("recipe %s: %s can be read again", recipe.name, spec.table or "the query")

    async def wait() -> None:
        wakeups = parts.get("wakeups")
        if not isinstance(wakeups, Wakeups):
            await asyncio.sleep(spec.poll_s)  # the database could not be set up: try again
        elif await wakeups.wait(spec.poll_s):
            # woken: a burst of statements is one look, not one per statement
            await wakeups.wait(0.05)

    first = asyncio.ensure_future(asyncio.to_thread(look))
    try:
        await asyncio.wait({first}, timeout=FIRST_LOOK_WAIT_S)
        started.set()
        await first
        while True:
            await wait()
            await asyncio.to_thread(look)
    finally:
        first.cancel()
        reader = parts.get("reader")
        if isinstance(reader, DbTableReader):
            reader.conn.close()
        wakeups = parts.get("wakeups")
        if isinstance(wakeups, Wakeups):
            await wakeups.close()
