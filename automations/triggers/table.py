"""Table triggers: which rows of a CSV / JSONL file are new or changed since the last look.

``TableReader.scan_batches()`` reads what is new in the file in batches (``TableBatch``, one per
chunk of about 32 KiB) and turns each into ``TableEvent`` values; the runner records a batch's
runs durably and only then calls ``commit_batch(batch)``, which records the marks of its rows and
the position after it in one ``StateStore.set_state`` call. A crash between the two re-produces
the same events, and the inbox de-duplicates them by ``dedupe_key``. Memory stays flat whatever
the file's size: one chunk, its rows and their marks at a time. ``scan()`` / ``commit(events)``
do the same for a whole look at once (small tables, tests).

How the file is read:

- Through ``table_files.open_table``: inside the allowed directories, a regular file (a FIFO or a
  device is refused before a byte is read), at most ``TableSpec.max_bytes``. A refusal is the
  reader's ``error`` (shown on the recipe), never an exception out of a scan.
- If the file only grew since the last look (its identity, size and a fingerprint of a bounded
  sample of the bytes read before; see ``table_position``), only the new bytes are read: a look
  costs the same at ten thousand rows as at a million. Otherwise (replaced, shrunk, edited) it is
  re-read whole; rows whose key was seen before are compared by hash, so nothing re-runs by
  accident.
- Only complete records count (see ``table_records``); a half-written last line waits.

What counts as a change (``table_state``, shared with the database tables): per key, the state
holds a 16-hex-digit hash of the columns the recipe reads (``TableSpec.reads``: its key,
references, conditions and ``columns:``; the whole row when it reads ``@``) and a revision number,
``"<hash>.<revision>"``. A change in another column, a new column, a reordered or renamed unread
column leave the hash alone: nothing runs. Each change of the hash is a new revision, and an
updated row's ``dedupe_key`` is derived from hash *and* revision, so a value changed back
(A → B → A) runs again. Keys are never forgotten, so a file truncated and refilled by an exporter
does not re-run its rows. A later row with the same key is a newer version of that row: within a
batch only the last version is compared; in a later batch of the same look it is compared with the
earlier one (an ``updated`` run if it changed and the recipe runs on updates; on a first
activation, recorded without a second run).

A CSV header without a column the recipe reads (renamed, removed) is the reader's ``error``: the
scan returns nothing and commits nothing until the header has it again, and then only rows that
really changed meanwhile run.

Upgrading: state written before revisions (a bare 16-hex hash of the whole projected row, meta
without ``reads``) is read as revision 0 and compared the old way once, in a full re-read: rows
unchanged since are migrated silently; only rows changed while the runner was down run. State
written before fingerprints (meta version 2) has its prefix hash checked once, then gains one.

State layout in the scope: ``meta`` (JSON: format version, generation, key column, projection,
reads, the position: offset, line, CSV header, prefix hash, identity, fingerprint; and ``mode``
while a look that must finish is under way) and one ``k<generation>:<key>`` entry per key, looked
up in the store batch by batch (never loaded whole: a million keys stay in the store). Changing
the recipe's key column starts a new generation: a fresh first activation. Changing what the
recipe reads (or the projection) re-records every hash without runs. A first activation or such a
re-recording interrupted by a restart goes on where it stopped (``mode``), with the same rules.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from automations.errors import TableFileError
from automations.model import TableSpec
from automations.ports import StateStore
from automations.triggers.table_files import TableAccess, open_table
from automations.triggers.table_position import Position, prefix_hasher, read_chunks, resume
from automations.triggers.table_records import RawRecord, TableProblem, parse_chunk, table_format
from automations.triggers.table_state import KeyedRow, RowRules, RowStates, TableEvent

__all__ = ["TableBatch", "TableEvent", "TableProblem", "TableReader", "find_row"]

_META = "meta"
_META_VERSION = 3
#: ``meta["reads"]`` of state written before this version knew what a recipe reads.
_LEGACY = "legacy"
#: ``meta["mode"]`` while a first activation / a quiet re-recording is under way.
_ACTIVATING = "activating"
_QUIET = "quiet"
#: ``problems`` keeps this many per look (the rest are counted in ``more_problems``).
MAX_PROBLEMS = 1000


@dataclass(slots=True)
class TableBatch:
    """One batch of a look at the table: its events, and what ``commit_batch`` records."""

    events: list[TableEvent]
    #: The rows of this batch that were skipped (no key, unreadable), by line.
    problems: list[TableProblem]
    changes: dict[str, str]
    gen: int
    meta: dict[str, Any]
    #: The live prefix hash at the batch's end (kept by the reader once committed).
    hasher: Any
    #: The last batch of the look (the file's end as it was when read).
    last: bool
    stat: tuple[int, ...]
    settled: bool


@dataclass(slots=True)
class _Committed:
    meta: dict[str, Any] | None = None
    stat: tuple[int, ...] | None = None
    settled: bool = False


@dataclass(slots=True)
class _Plan:
    """How one look reads: from where, under which rules."""

    gen: int
    mode: str | None
    whole: bool


class TableReader:
    """Incremental reader of one table for one recipe, persisting under ``scope``.

    Not thread-safe: one runner task (on one thread at a time) owns a reader. ``problems`` holds
    the rows the latest look skipped (no key, unreadable) with their line numbers (the first
    ``MAX_PROBLEMS``; ``more_problems`` counts the others).
    """

    def __init__(self, spec: TableSpec, state: StateStore, scope: str) -> None:
        self.spec = spec
        self.scope = scope
        self.problems: list[TableProblem] = []
        self.more_problems = 0
        #: Why the latest scan could not use the file (not allowed, not a regular file, a column
        #: the recipe reads is missing from the header); ``None`` when it could.
        self.error: str | None = None
        #: Whether the latest scan was (part of) the first activation.
        self.activating = False
        self._state = state
        self._format = table_format(spec.path)
        self._access = TableAccess(spec.roots, spec.max_bytes)
        self._reads = sorted(spec.reads) if spec.reads is not None else None
        self._projection = list(spec.columns) if spec.columns is not None else None
        self._committed: _Committed | None = None
        self._pending: deque[TableBatch] = deque()
        #: Marks of batches scanned but not committed yet (a later batch compares with them).
        self._overlay: dict[str, str] = {}
        #: The prefix hash at the committed offset, once read or checked in this process.
        self._live: Any | None = None
        #: The file's stat when ``error`` was found: unchanged, it is not read again.
        self._broken: tuple[int, ...] | None = None

    @property
    def activated(self) -> bool:
        """Whether the first activation was committed to its end (persisted in the store)."""
        meta = self._load().meta
        return (
            meta is not None
            and meta.get("key") == self.spec.key
            and meta.get("mode") != _ACTIVATING
        )

    def activate(self) -> list[TableEvent]:
        """The first scan. On first activation (persisted: it happens once per recipe and key
        column) the rows already in the file are, per ``existing_rows``, either recorded as seen
        without events (``skip``, committed at once) or returned as events (``run``). Once
        activated it is the same as ``scan()``, which catches up on rows written meanwhile.

        A missing file defers activation: the rows present when the file first appears are
        the existing rows (an empty or header-only file means "start from empty")."""
        return self.scan()

    def scan(self, *, settled: bool = False) -> list[TableEvent]:
        """Events for rows added / changed since the last commit (activating first if needed),
        the whole look at once. Scanning again before ``commit`` returns the same events (and any
        newer ones). A scan with no events commits by itself. ``settled=True`` says the writer is
        done (e.g. the file has not changed for a while): a last row without its trailing newline
        then counts."""
        batches = list(self.scan_batches(settled=settled))
        events = [event for batch in batches for event in batch.events]
        if not events:
            for batch in batches:
                self.commit_batch(batch)
        return events

    def commit(self, events: Sequence[TableEvent]) -> None:
        """Record what the latest ``scan()`` saw. Call it once ``events`` (exactly that scan's
        events) are durably enqueued; ``ValueError`` for any other list."""
        if not self._pending:
            if events:
                raise ValueError("commit() was given events, but no scan() is waiting for it")
            return
        waiting = [event.dedupe_key for batch in self._pending for event in batch.events]
        if [event.dedupe_key for event in events] != waiting:
            raise ValueError("commit() must be given exactly the events of the latest scan()")
        while self._pending:
            self.commit_batch(self._pending[0])

    def scan_batches(self, *, settled: bool = False) -> Iterator[TableBatch]:
        """The look ``scan`` takes, one batch at a time. Commit each batch (``commit_batch``, in
        order) once its events are durably recorded; an uncommitted batch is produced again by
        the next look. A new look drops the batches of the previous one not committed yet."""
        committed = self._load()
        self._pending.clear()
        self._overlay.clear()
        self.problems, self.more_problems = [], 0
        stat = self._stat()
        if stat is None:
            self.error = None
            return
        if stat == self._broken:
            return  # still the file that could not be used; ``error`` says why
        self.error = self._broken = None
        meta = dict(committed.meta or {})
        plan = self._plan(meta)
        self.activating = plan.mode == _ACTIVATING
        if plan.mode is None and committed.stat == stat and (committed.settled or not settled):
            return  # nothing changed since the last commit
        try:
            handle = open_table(self.spec.path, self._access)
        except TableFileError as exc:
            self._refuse(stat, str(exc))
            return
        except OSError as exc:
            self.problems = [TableProblem(0, f"cannot read {self.spec.path}: {exc.strerror}")]
            return
        with handle:
            try:
                start = None if plan.whole else resume(handle, Position.from_meta(meta), self._live)
            except OSError as exc:
                self.problems = [TableProblem(0, f"cannot read {self.spec.path}: {exc.strerror}")]
                return
            if start is None:
                handle.seek(0)
                position, hasher = Position(), None
            else:
                position, hasher = start
            yield from self._batches(handle, plan, meta, position, hasher, stat, settled)

    def _batches(
        self,
        handle: Any,
        plan: _Plan,
        meta: dict[str, Any],
        position: Position,
        hasher: Any | None,
        stat: tuple[int, ...],
        settled: bool,
    ) -> Iterator[TableBatch]:
        rows = self._row_states(plan.gen)
        chunks = read_chunks(
            handle,
            self.spec.path,
            self._format,
            position,
            hasher if hasher is not None else prefix_hasher(),
            settled=settled,
            max_bytes=self._access.max_bytes,
        )
        try:
            for chunk in chunks:
                missing = self._missing_columns(chunk.position.header)
                if missing:
                    names = ", ".join(f'"{name}"' for name in missing)
                    self._refuse(
                        stat,
                        f"the header of {self.spec.path.name} has no column {names}, which the "
                        "recipe reads (renamed or removed?); nothing runs for this recipe until "
                        "the header has it again",
                    )
                    return
                parsed = chunk.parsed
                problems = list(parsed.problems)
                records = parsed.records + ([parsed.tail] if parsed.tail is not None else [])
                keyed = self._keyed(records, problems)
                compared = rows.compare(
                    keyed,
                    activating=plan.mode == _ACTIVATING,
                    quiet=plan.mode == _QUIET,
                    pending=self._overlay,
                )
                self._overlay.update(compared.changes)
                problems.sort(key=lambda problem: problem.line)
                self._note(problems)
                batch_meta = {
                    **meta,
                    "v": _META_VERSION,
                    "gen": plan.gen,
                    "key": self.spec.key,
                    "columns": self._projection,
                    "reads": self._reads,
                    **chunk.position.as_meta(),
                    "mode": None if chunk.last else plan.mode,
                }
                batch = TableBatch(
                    compared.events,
                    problems,
                    compared.changes,
                    plan.gen,
                    batch_meta,
                    chunk.hasher,
                    chunk.last,
                    stat,
                    settled,
                )
                self._pending.append(batch)
                yield batch
        except TableFileError as exc:
            self._refuse(stat, str(exc))
        except OSError as exc:
            self.problems = [TableProblem(0, f"cannot read {self.spec.path}: {exc.strerror}")]

    def commit_batch(self, batch: TableBatch) -> None:
        """Record one batch of the latest look: its rows' marks and the position after it, in one
        ``set_state`` call. Batches are committed in the order scanned (``ValueError`` else)."""
        if not self._pending or self._pending[0] is not batch:
            raise ValueError("commit_batch() takes the batches of the latest look, in order")
        self._pending.popleft()
        committed = self._load()
        if batch.changes or batch.meta != committed.meta:
            meta = json.dumps(batch.meta, separators=(",", ":"))
            self._row_states(batch.gen).record(batch.changes, [(_META, meta)])
        committed.meta = batch.meta
        for key, mark in batch.changes.items():
            if self._overlay.get(key) == mark:
                del self._overlay[key]
        self._live = batch.hasher
        if batch.last:
            committed.stat = batch.stat
            committed.settled = batch.settled

    def _plan(self, meta: dict[str, Any]) -> _Plan:
        """Whether this look activates, re-records quietly or reads on, and from where."""
        if not meta or meta.get("key") != self.spec.key:
            return _Plan(int(meta.get("gen", -1)) + 1, _ACTIVATING, whole=True)
        gen, mode = int(meta["gen"]), meta.get("mode")
        if mode in (_ACTIVATING, _QUIET):
            return _Plan(gen, str(mode), whole=False)  # goes on where it stopped
        reads = meta.get("reads", _LEGACY)
        # A new projection or a recipe reading other columns changes every hash: record the new
        # ones without update runs. State from before ``reads`` is compared the old way.
        if meta.get("columns") != self._projection or reads not in (_LEGACY, self._reads):
            return _Plan(gen, _QUIET, whole=True)
        return _Plan(gen, None, whole=reads == _LEGACY)

    def _note(self, problems: list[TableProblem]) -> None:
        room = MAX_PROBLEMS - len(self.problems)
        self.problems.extend(problems[: max(room, 0)])
        self.more_problems += max(len(problems) - max(room, 0), 0)

    def _refuse(self, stat: tuple[int, ...], error: str) -> None:
        self.problems = []
        self.error, self._broken = error, stat

    def _missing_columns(self, header: tuple[str, ...] | None) -> list[str]:
        """The columns the recipe reads that a CSV header lacks (JSONL rows have no header:
        a missing field is null there)."""
        if header is None or self._format != "csv":
            return []
        wanted = self._reads if self._reads is not None else [self.spec.key]
        present = set(header)
        return [name for name in wanted if name not in present]

    def _load(self) -> _Committed:
        if self._committed is None:
            # only the position: the marks of the rows are looked up batch by batch
            stored = self._state.get_state(self.scope, _META)
            committed = _Committed()
            if stored is not None:
                committed.meta = json.loads(stored)
            self._committed = committed
        return self._committed

    def _stat(self) -> tuple[int, ...] | None:
        """The file's identity, size and times; ``None`` (and a problem) if it cannot be read."""
        try:
            st = os.stat(self.spec.path)
        except FileNotFoundError:
            self.problems = [TableProblem(0, f"table file {self.spec.path} does not exist")]
            return None
        except OSError as exc:
            self.problems = [TableProblem(0, f"cannot read {self.spec.path}: {exc.strerror}")]
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _row_states(self, gen: int) -> RowStates:
        return RowStates(self._state, self.scope, gen, self._reads, RowRules.of(self.spec))

    def _keyed(self, records: list[RawRecord], problems: list[TableProblem]) -> list[KeyedRow]:
        """The records with a usable key, projected; the others are ``problems``."""
        keyed = []
        for record in records:
            key = _key_of(record, self.spec.key, problems)
            if key is not None:
                keyed.append(KeyedRow(key, _project(record.values, self.spec.columns), record.line))
        return keyed


def find_row(spec: TableSpec, key: str) -> dict[str, Any] | None:
    """The row of ``spec``'s table whose key column is ``key`` (the last one, if the key is
    repeated), as a run would see it; ``None`` when no row has it. Raises ``OSError`` when the
    file cannot be read, ``ValueError`` for a file that is not a table."""
    data = spec.path.read_bytes()
    parsed = parse_chunk(
        table_format(spec.path), data, at_start=True, first_line=1, header=None, settled=True
    )
    records = parsed.records + ([parsed.tail] if parsed.tail is not None else [])
    found: dict[str, Any] | None = None
    for record in records:
        if _key_of(record, spec.key, []) == key.strip():
            found = _project(record.values, spec.columns)
    return found


def _key_of(record: RawRecord, column: str, problems: list[TableProblem]) -> str | None:
    value = record.values.get(column)
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append(_key_problem(record.line, column, value))
        return None
    key = str(value).strip()
    if not key:
        problems.append(TableProblem(record.line, f"key column {column!r} is empty"))
        return None
    return key


def _key_problem(line: int, column: str, value: Any) -> TableProblem:
    if value is None:
        return TableProblem(line, f"no value for key column {column!r}")
    return TableProblem(line, f"key column {column!r} must be a string or an integer")


def _project(values: dict[str, Any], columns: tuple[str, ...] | None) -> dict[str, Any]:
    if columns is None:
        return values
    return {name: values.get(name) for name in columns}
