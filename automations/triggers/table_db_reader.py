"""Database table triggers: which rows of a table (or a query's result) are new or changed.

One *look* at the table reads it in pages of ``batch`` rows (``table_db.TableConnection``) and
compares each row with what was seen before, the way file tables do (``triggers/table.py``):
per key, the state holds ``"<hash>.<revision>"`` (16 hex digits of the hash of the columns the
recipe reads), so a change in a column the recipe does not read (or one that ``write_back``
writes) runs nothing, and a value changed back (A → B → A) runs again (the revision is part of
the run's identity).

Which rows a look reads:

- without ``changed_by``: every row, in key order (a keyed scan; each page is one statement);
- with ``changed_by``: the rows whose ``changed_by`` is at least the last look's largest, in
  ``(changed_by, key)`` order. Rows sharing that largest value are read again (they are already
  known, so they run nothing): a row committed later with an equal value and a smaller key is not
  lost. A row whose ``changed_by`` is null is never read.

Restart safety: a page's state is written (``commit``) only after its events were recorded in the
run store, and the position (the cursor; whether the first look is done) only at the end of the
look. A crash in the middle reads the table again from the last position: rows already recorded
compare equal and run nothing, so every row still runs exactly once.

Per-key state is ``triggers/table_state.RowStates`` (shared with file tables): each page looks up
its keys in one store query and never loads the others. State layout in the scope: ``meta``
(JSON: format version, generation, key, projection, reads, ``changed_by``, cursor, activated) and
one ``k<generation>:<key>`` entry per key. A new key column is a new generation (a fresh first
activation); other reads re-record the hashes without runs, as for files. Memory is bounded by
the page: nothing is kept per key between pages.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from automations.errors import TableDatabaseError
from automations.model import DbTableSpec, ExistingRows
from automations.ports import StateStore
from automations.triggers.table_db import TableConnection, json_value
from automations.triggers.table_records import TableProblem
from automations.triggers.table_state import KeyedRow, RowRules, RowStates, TableEvent

__all__ = ["DbTableReader", "Page"]

_META = "meta"
_META_VERSION = 1
#: Rows per statement.
BATCH = 5000


@dataclass(slots=True)
class Page:
    """What one page of a look found: events to run (with the state each one sets, recorded by
    ``commit`` once the event is recorded) and state changes that run nothing."""

    events: list[TableEvent] = field(default_factory=list)
    #: ``(state name, value)`` per event, in the same order.
    event_state: list[tuple[str, str]] = field(default_factory=list)
    quiet: list[tuple[str, str]] = field(default_factory=list)


class DbTableReader:
    """Incremental reader of one database table for one recipe, persisting under ``scope``.

    Not thread-safe: one source task owns a reader and calls it from one thread at a time."""

    def __init__(
        self,
        spec: DbTableSpec,
        conn: TableConnection,
        state: StateStore,
        scope: str,
        *,
        batch: int = BATCH,
    ) -> None:
        self.spec = spec
        self.conn = conn
        self.scope = scope
        self.batch = batch
        self.problems: list[TableProblem] = []
        #: Whether the look in progress is the first activation.
        self.activating = False
        self.state = state
        self._reads = sorted(spec.reads) if spec.reads is not None else None
        self.marker = frozenset([spec.changed_by] if spec.changed_by else [])
        self._meta: dict[str, Any] | None = None
        self._loaded = False
        self._next_meta: dict[str, Any] | None = None
        #: Marks of events handed out but not yet committed, by key (a key seen twice in one
        #: look is compared with its newest mark).
        self._uncommitted: dict[str, str] = {}

    # -- state -------------------------------------------------------------------------------

    def _load_meta(self) -> dict[str, Any] | None:
        if not self._loaded:
            raw = self.state.get_state(self.scope, _META)
            self._meta = json.loads(raw) if raw else None
            self._loaded = True
        return self._meta

    @property
    def activated(self) -> bool:
        meta = self._load_meta()
        return bool(meta and meta.get("key") == self.spec.key and meta.get("activated"))

    def commit(self, items: Sequence[tuple[str, str]]) -> None:
        """Record state a page produced (its events are recorded in the run store by now)."""
        if items:
            self.state.set_state(self.scope, items)
            for name, _ in items:
                self._uncommitted.pop(name.partition(":")[2], None)

    def finish(self) -> None:
        """Record the position of the look that just ended (every page committed)."""
        meta = self._next_meta
        if meta is None:
            return
        if meta != self._meta:
            self.state.set_state(self.scope, [(_META, json.dumps(meta, separators=(",", ":")))])
            self._meta = meta
        self._next_meta = None
        self._uncommitted.clear()

    # -- a look ------------------------------------------------------------------------------

    def look(self) -> Iterator[Page]:
        """The pages of one look at the table (see the module docstring). ``TableDatabaseError``
        when the database cannot be read; nothing is recorded then."""
        spec = self.spec
        meta = dict(self._load_meta() or {})
        self.problems = []
        self._uncommitted.clear()
        same_key = meta.get("key") == spec.key
        activated = same_key and bool(meta.get("activated"))
        self.activating = not activated
        if same_key:
            gen = int(meta.get("gen", 0))
        else:
            gen = int(meta.get("gen", -1)) + 1
            meta = {}
        projection = list(spec.columns) if spec.columns is not None else None
        quiet = activated and (
            meta.get("columns") != projection or meta.get("reads") != self._reads
        )
        cursor = meta.get("cursor") if meta.get("changed_by") == spec.changed_by else None
        if not activated or quiet:
            cursor = None  # read it all: every key gets its hash
        self._next_meta = None
        last: tuple[Any, Any] | None = None
        pages = self._pages(cursor)
        for names, rows in pages:
            page, last_row = self._diff(names, rows, gen, activating=not activated, quiet=quiet)
            if last_row is not None:
                last = last_row
            yield page
        new_cursor = cursor
        if spec.changed_by is not None and last is not None:
            new_cursor = [json_value(last[0]), json_value(last[1])]
        self._next_meta = {
            "v": _META_VERSION,
            "gen": gen,
            "key": spec.key,
            "columns": projection,
            "reads": self._reads,
            "changed_by": spec.changed_by,
            "cursor": new_cursor,
            "activated": True,
        }

    def _pages(self, cursor: Any) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        spec, conn, batch = self.spec, self.conn, self.batch
        if spec.changed_by is None:
            after: Any = None
            while True:
                names, rows = conn.by_key(spec.key, after, batch)
                yield names, rows
                if len(rows) < batch:
                    return
                after = rows[-1][names.index(spec.key)]
        position: tuple[Any, Any] | None = (cursor[0], cursor[1]) if cursor else None
        inclusive = position is not None
        while True:
            names, rows = conn.by_cursor(
                spec.changed_by, spec.key, position, batch, inclusive=inclusive
            )
            yield names, rows
            if len(rows) < batch:
                return
            c, k = names.index(spec.changed_by), names.index(spec.key)
            position, inclusive = (rows[-1][c], rows[-1][k]), False

    def _diff(
        self,
        names: list[str],
        rows: list[tuple[Any, ...]],
        gen: int,
        *,
        activating: bool,
        quiet: bool,
    ) -> tuple[Page, tuple[Any, Any] | None]:
        spec = self.spec
        page = Page()
        wanted = [spec.key, *([spec.changed_by] if spec.changed_by else []), *(self._reads or [])]
        missing = [n for n in dict.fromkeys(wanted) if n not in names]
        if missing:
            raise _missing(self.conn, missing)
        if not rows:
            return page, None
        k = names.index(spec.key)
        c = names.index(spec.changed_by) if spec.changed_by is not None else None
        keyed: list[KeyedRow] = []
        # most pages hold only plain values (always so in SQLite, but for blobs): then a row is
        # its values as they come, without a conversion per cell
        plain = set(map(type, itertools.chain.from_iterable(rows))) <= _PLAIN
        for raw in rows:
            value = raw[k]
            key = "" if value is None else str(json_value(value)).strip()
            if not key:
                self.problems.append(
                    TableProblem(0, f"a row has no value for key column {spec.key!r}")
                )
                continue
            row = dict(zip(names, raw if plain else map(json_value, raw), strict=True))
            if spec.columns is not None:
                row = {n: row.get(n) for n in spec.columns}
            keyed.append(KeyedRow(key, row))
        states = _DbRowStates(
            self, gen, [n for n in names if spec.columns is None or n in spec.columns]
        )
        found = states.compare(keyed, activating=activating, quiet=quiet, pending=self._uncommitted)
        changed = dict(found.changes)
        for event in found.events:
            mark = changed.pop(event.key)
            page.events.append(event)
            page.event_state.append((states.entry(event.key), mark))
            self._uncommitted[event.key] = mark
        page.quiet = [(states.entry(key), mark) for key, mark in changed.items()]
        last = rows[-1]
        return page, ((last[c] if c is not None else None), last[k])


_PLAIN = frozenset({str, int, float, bool, type(None)})


class _DbRowStates(RowStates):
    """``RowStates`` whose hash never includes the columns ``write_back`` writes nor
    ``changed_by`` (a marker of change, not content: a trigger on the table bumps it on every
    UPDATE, a write-back's too)."""

    def __init__(self, reader: DbTableReader, generation: int, columns: list[str]) -> None:
        spec = reader.spec
        skip = spec.written | reader.marker
        # a recipe reading the whole row (``@``) reads every column of it but the skipped ones:
        # named here, so that the hash below is used (``RowStates`` hashes a whole row itself)
        wanted = set(columns) if spec.reads is None else spec.reads
        reads = sorted(wanted - skip)
        rules = RowRules(
            spec.run_on_added, spec.run_on_updated, spec.existing_rows is ExistingRows.RUN
        )
        super().__init__(reader.state, reader.scope, generation, reads, rules)

    def digest(self, row: Mapping[str, Any]) -> str:
        """16 hex digits of the BLAKE2b of what the recipe reads: the values in ``reads``
        order. They are JSON values, whose ``repr`` is exact and stable (and, in C, much cheaper
        than JSON text)."""
        value = [row.get(name) for name in self.reads or ()]
        return hashlib.blake2b(repr(value).encode(), digest_size=8).hexdigest()


def _missing(conn: TableConnection, columns: list[str]) -> TableDatabaseError:
    names = ", ".join(f'"{name}"' for name in columns)
    return TableDatabaseError(
        f"{conn.name} in database {conn.db.shown} has no column {names}, which the recipe "
        "reads (renamed or removed?); nothing runs for this recipe until it has"
    )
