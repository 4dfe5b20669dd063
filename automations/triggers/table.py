"""Table triggers: which rows of a CSV / JSONL file are new or changed since the last look.

``TableReader.scan()`` turns the file's current content into ``TableEvent`` values; the runner
enqueues them durably and only then calls ``commit(events)``, which records what was seen in one
``StateStore.set_state`` call. A crash between the two re-produces the same events, and the inbox
de-duplicates them by ``dedupe_key``.

How the file is read:

- Through ``table_files.open_table``: inside the allowed directories, a regular file (a FIFO or a
  device is refused before a byte is read), at most ``TableSpec.max_bytes``. A refusal is the
  reader's ``error`` (shown on the recipe), never an exception out of ``scan``.
- The reader remembers a byte offset (the end of the last complete record) and a hash of the
  bytes before it. If the file still starts with exactly those bytes it only grew: only the
  appended part is parsed. Otherwise (shrunk, edited, replaced by an export) it is re-read whole;
  rows whose key was seen before are compared by hash, so nothing re-runs by accident.
- Only complete records count (see ``table_records``); a half-written last line waits.

What counts as a change (``table_state``, shared with the database tables): per key, the state
holds a 16-hex-digit hash of the columns the recipe
reads (``TableSpec.reads``: its key, references, conditions and ``columns:``; the whole row when
it reads ``@``) and a revision number, ``"<hash>.<revision>"``. A change in another column, a new
column, a reordered or renamed unread column leave the hash alone: nothing runs. Each change of
the hash is a new revision, and an updated row's ``dedupe_key`` is derived from hash *and*
revision, so a value changed back (A → B → A) runs again. Keys are never forgotten, so a file
truncated and refilled by an exporter does not re-run its rows. A later row with the same key is
a newer version of that row.

A CSV header without a column the recipe reads (renamed, removed) is the reader's ``error``: the
scan returns nothing and commits nothing until the header has it again, and then only rows that
really changed meanwhile run.

Upgrading: state written before revisions (a bare 16-hex hash of the whole projected row, meta
without ``reads``) is read as revision 0 and compared the old way once, in a full re-read: rows
unchanged since are migrated silently; only rows changed while the runner was down run.

State layout in the scope: ``meta`` (JSON: format version, key column, projection, reads, offset,
line, prefix hash, CSV header) and one ``k<generation>:<key>`` entry per key, looked up in the
store batch by batch (never loaded whole: a million keys stay in the store). Changing the
recipe's key column starts a new generation: a fresh first activation. Changing what the recipe
reads (or the projection) re-records every hash without runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from automations.errors import TableFileError
from automations.model import TableSpec
from automations.ports import StateStore
from automations.triggers.table_files import TableAccess, open_table, read_bounded
from automations.triggers.table_records import RawRecord, TableProblem, parse_chunk, table_format
from automations.triggers.table_state import KeyedRow, RowRules, RowStates, TableEvent

__all__ = ["TableEvent", "TableProblem", "TableReader", "find_row"]

_META = "meta"
_META_VERSION = 2
#: ``meta["reads"]`` of state written before this version knew what a recipe reads.
_LEGACY = "legacy"
_READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class _Position:
    offset: int = 0
    line: int = 1
    prefix: str = hashlib.blake2b(digest_size=16).hexdigest()
    header: tuple[str, ...] | None = None


@dataclass(slots=True)
class _Pending:
    """What a scan saw, applied to the state by ``commit``."""

    dedupe_keys: list[str]
    changes: dict[str, str]
    gen: int
    meta: dict[str, Any]
    stat: tuple[int, ...]
    settled: bool


@dataclass(slots=True)
class _Committed:
    meta: dict[str, Any] | None = None
    stat: tuple[int, ...] | None = None
    settled: bool = False


class TableReader:
    """Incremental reader of one table for one recipe, persisting under ``scope``.

    Not thread-safe: one runner task owns a reader. ``problems`` holds the rows the latest scan
    skipped (no key, unreadable) with their line numbers.
    """

    def __init__(self, spec: TableSpec, state: StateStore, scope: str) -> None:
        self.spec = spec
        self.scope = scope
        self.problems: list[TableProblem] = []
        #: Why the latest scan could not use the file (not allowed, not a regular file, a column
        #: the recipe reads is missing from the header); ``None`` when it could.
        self.error: str | None = None
        #: Whether the latest scan was the first activation (nothing committed before).
        self.activating = False
        self._state = state
        self._format = table_format(spec.path)
        self._access = TableAccess(spec.roots, spec.max_bytes)
        self._reads = sorted(spec.reads) if spec.reads is not None else None
        self._committed: _Committed | None = None
        self._pending: _Pending | None = None
        #: The file's stat when ``error`` was found: unchanged, it is not read again.
        self._broken: tuple[int, ...] | None = None

    @property
    def activated(self) -> bool:
        """Whether the first activation was committed (persisted in the state store)."""
        meta = self._load().meta
        return meta is not None and meta.get("key") == self.spec.key

    def activate(self) -> list[TableEvent]:
        """The first scan. On first activation (persisted: it happens once per recipe and key
        column) the rows already in the file are, per ``existing_rows``, either recorded as seen
        without events (``skip``, committed at once) or returned as events (``run``). Once
        activated it is the same as ``scan()``, which catches up on rows written meanwhile.

        A missing file defers activation: the rows present when the file first appears are
        the existing rows (an empty or header-only file means "start from empty")."""
        return self.scan()

    def scan(self, *, settled: bool = False) -> list[TableEvent]:
        """Events for rows added / changed since the last commit (activating first if needed).

        Scanning again before ``commit`` returns the same events (and any newer ones). A scan
        with no events commits by itself. ``settled=True`` says the writer is done (e.g. the
        file has not changed for a while): a last row without its trailing newline then counts.
        """
        committed = self._load()
        self._pending = None
        self.problems = []
        stat = self._stat()
        if stat is None:
            self.error = None
            return []
        if stat == self._broken:
            return []  # still the file that could not be used; ``error`` says why
        self.error = self._broken = None
        activated = self.activated
        self.activating = not activated
        if activated and committed.stat == stat and (committed.settled or not settled):
            return []  # nothing changed since the last commit
        meta = dict(committed.meta or {})
        projection = list(self.spec.columns) if self.spec.columns is not None else None
        reads = meta.get("reads", _LEGACY)
        # A new projection or a recipe reading other columns changes every hash: record the new
        # ones without update runs. State from before ``reads`` is compared the old way (below).
        quiet = activated and (
            meta.get("columns") != projection or reads not in (_LEGACY, self._reads)
        )
        if activated:
            gen = int(meta["gen"])
            whole = quiet or reads == _LEGACY  # re-read it all: every key gets the new hash
            start = _Position() if whole else _position_from(meta)
        else:
            gen, start = int(meta.get("gen", -1)) + 1, _Position()
        try:
            records, position = self._read_records(start, settled)
        except TableFileError as exc:
            return self._refuse(stat, str(exc))
        except OSError as exc:
            self.problems = [TableProblem(0, f"cannot read {self.spec.path}: {exc.strerror}")]
            return []
        missing = self._missing_columns(position.header)
        if missing:
            names = ", ".join(f'"{name}"' for name in missing)
            return self._refuse(
                stat,
                f"the header of {self.spec.path.name} has no column {names}, which the recipe "
                "reads (renamed or removed?); nothing runs for this recipe until the header "
                "has it again",
            )
        rows = self._row_states(gen)
        keyed = self._keyed(records)
        compared = rows.compare(keyed, activating=not activated, quiet=quiet)
        events, changes = compared.events, compared.changes
        self.problems.sort(key=lambda problem: problem.line)
        meta.update(
            v=_META_VERSION,
            gen=gen,
            key=self.spec.key,
            columns=projection,
            reads=self._reads,
            offset=position.offset,
            line=position.line,
            prefix=position.prefix,
            header=list(position.header) if position.header is not None else None,
        )
        dedupe_keys = [event.dedupe_key for event in events]
        self._pending = _Pending(dedupe_keys, changes, gen, meta, stat, settled)
        if not events:
            self.commit(events)
        return events

    def _refuse(self, stat: tuple[int, ...], error: str) -> list[TableEvent]:
        self.problems = []
        self.error, self._broken = error, stat
        return []

    def _missing_columns(self, header: tuple[str, ...] | None) -> list[str]:
        """The columns the recipe reads that a CSV header lacks (JSONL rows have no header:
        a missing field is null there)."""
        if header is None or self._format != "csv":
            return []
        wanted = self._reads if self._reads is not None else [self.spec.key]
        present = set(header)
        return [name for name in wanted if name not in present]

    def commit(self, events: Sequence[TableEvent]) -> None:
        """Record what the latest ``scan()`` saw. Call it once ``events`` (exactly that scan's
        events) are durably enqueued; ``ValueError`` for any other list."""
        pending = self._pending
        if pending is None:
            if events:
                raise ValueError("commit() was given events, but no scan() is waiting for it")
            return
        if [event.dedupe_key for event in events] != pending.dedupe_keys:
            raise ValueError("commit() must be given exactly the events of the latest scan()")
        committed = self._load()
        if pending.changes or pending.meta != committed.meta:
            meta = json.dumps(pending.meta, separators=(",", ":"))
            self._row_states(pending.gen).record(pending.changes, [(_META, meta)])
        committed.meta = pending.meta
        committed.stat = pending.stat
        committed.settled = pending.settled
        self._pending = None

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

    def _read_records(self, start: _Position, settled: bool) -> tuple[list[RawRecord], _Position]:
        """The complete records after ``start`` (or in the whole file, if it is not the file
        ``start`` was taken from any more) and the position after them; sets ``problems``."""
        chunk, start, hasher = self._read(start)
        parsed = parse_chunk(
            self._format,
            chunk,
            at_start=start.offset == 0,
            first_line=start.line,
            header=start.header,
            settled=settled,
        )
        self.problems = parsed.problems
        hasher.update(chunk[: parsed.consumed])
        position = _Position(
            offset=start.offset + parsed.consumed,
            line=start.line + parsed.lines,
            prefix=hasher.hexdigest(),
            header=parsed.header,
        )
        tail = [parsed.tail] if parsed.tail is not None else []
        return parsed.records + tail, position

    def _read(self, start: _Position) -> tuple[bytes, _Position, hashlib.blake2b]:
        """The bytes from ``start`` on if the file still begins with what was read before
        (``start.prefix``), else the whole file from a fresh position; with the hash state of
        the bytes before the returned chunk. Bounded: ``TableFileError`` past ``max_bytes``."""
        path, limit = self.spec.path, self._access.max_bytes
        with open_table(path, self._access) as handle:
            if start.offset:
                hasher = hashlib.blake2b(digest_size=16)
                remaining = start.offset
                while remaining:
                    block = handle.read(min(remaining, _READ_CHUNK))
                    if not block:
                        break
                    hasher.update(block)
                    remaining -= len(block)
                if not remaining and hasher.hexdigest() == start.prefix:
                    return read_bounded(handle, path, limit, start.offset), start, hasher
                handle.seek(0)
            data = read_bounded(handle, path, limit)
            return data, _Position(), hashlib.blake2b(digest_size=16)

    def _row_states(self, gen: int) -> RowStates:
        return RowStates(self._state, self.scope, gen, self._reads, RowRules.of(self.spec))

    def _keyed(self, records: list[RawRecord]) -> list[KeyedRow]:
        """The records with a usable key, projected; the others are ``problems``."""
        keyed = []
        for record in records:
            key = _key_of(record, self.spec.key, self.problems)
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


def _position_from(meta: dict[str, Any]) -> _Position:
    header = meta.get("header")
    return _Position(
        offset=int(meta["offset"]),
        line=int(meta["line"]),
        prefix=str(meta["prefix"]),
        header=tuple(header) if header is not None else None,
    )


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
