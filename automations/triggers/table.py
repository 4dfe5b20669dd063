"""Table triggers: which rows of a CSV / JSONL file are new or changed since the last look.

``TableReader.scan()`` turns the file's current content into ``TableEvent`` values; the runner
enqueues them durably and only then calls ``commit(events)``, which records what was seen in one
``StateStore.set_state`` call. A crash between the two re-produces the same events, and the inbox
de-duplicates them by ``dedupe_key``.

How the file is read:

- The reader remembers a byte offset (the end of the last complete record) and a hash of the
  bytes before it. If the file still starts with exactly those bytes it only grew: only the
  appended part is parsed. Otherwise (shrunk, edited, replaced by an export) it is re-read whole;
  rows whose key was seen before are compared by content hash, so nothing re-runs by accident.
- Only complete records count (see ``table_records``); a half-written last line waits.
- Per key, the state holds a 16-hex-digit content hash; keys are never forgotten, so a file
  truncated and refilled by an exporter does not re-run its rows. A later row with the same key
  is a newer version of that row.

State layout in the scope: ``meta`` (JSON: format version, key column, projection, offset, line,
prefix hash, CSV header) and one ``k<generation>:<key>`` entry per key. Changing the recipe's key
column starts a new generation: a fresh first activation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from automations.model import ExistingRows, TableSpec
from automations.ports import StateStore
from automations.triggers.table_records import RawRecord, TableProblem, parse_chunk, table_format

__all__ = ["TableEvent", "TableProblem", "TableReader", "find_row"]

_META = "meta"
_META_VERSION = 1
_READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class TableEvent:
    """One row to run: new (``dedupe_key == key``) or with new content
    (``dedupe_key == f"{key}@{content_hash[:16]}"``, ``updated`` true)."""

    key: str
    #: The row (projected to ``TableSpec.columns`` when set). CSV values are strings.
    row: dict[str, Any]
    #: SHA-256 (hex) of the row's canonical JSON.
    content_hash: str
    dedupe_key: str
    #: 1-based line of the row's first physical line in the file.
    line: int
    updated: bool = False


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
    meta: dict[str, Any]
    stat: tuple[int, ...]
    settled: bool


@dataclass(slots=True)
class _Committed:
    meta: dict[str, Any] | None = None
    seen: dict[str, str] = field(default_factory=dict)
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
        self._state = state
        self._format = table_format(spec.path)
        self._committed: _Committed | None = None
        self._pending: _Pending | None = None

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
            return []
        activated = self.activated
        if activated and committed.stat == stat and (committed.settled or not settled):
            return []  # nothing changed since the last commit
        meta = dict(committed.meta or {})
        projection = list(self.spec.columns) if self.spec.columns is not None else None
        # A new projection changes every content hash: record the new ones without update runs.
        rebaseline = activated and meta.get("columns") != projection
        if activated:
            gen, seen = int(meta["gen"]), committed.seen
            start = _Position() if rebaseline else _position_from(meta)
        else:
            gen, seen, start = int(meta.get("gen", -1)) + 1, {}, _Position()
        try:
            records, position = self._read_records(start, settled)
        except OSError as exc:
            self.problems = [TableProblem(0, f"cannot read {self.spec.path}: {exc.strerror}")]
            return []
        events, changes = self._diff(records, seen, activating=not activated, quiet=rebaseline)
        self.problems.sort(key=lambda problem: problem.line)
        meta.update(
            v=_META_VERSION,
            gen=gen,
            key=self.spec.key,
            columns=projection,
            offset=position.offset,
            line=position.line,
            prefix=position.prefix,
            header=list(position.header) if position.header is not None else None,
        )
        dedupe_keys = [event.dedupe_key for event in events]
        self._pending = _Pending(dedupe_keys, changes, meta, stat, settled)
        if not events:
            self.commit(events)
        return events

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
        gen = pending.meta["gen"]
        if committed.meta is None or committed.meta.get("gen") != gen:
            committed.seen = {}
        if pending.changes or pending.meta != committed.meta:
            items = [(_META, json.dumps(pending.meta, separators=(",", ":")))]
            items.extend((f"k{gen}:{key}", digest) for key, digest in pending.changes.items())
            self._state.set_state(self.scope, items)
        committed.meta = pending.meta
        committed.seen.update(pending.changes)
        committed.stat = pending.stat
        committed.settled = pending.settled
        self._pending = None

    def _load(self) -> _Committed:
        if self._committed is None:
            stored = self._state.all_state(self.scope)
            committed = _Committed()
            if _META in stored:
                committed.meta = json.loads(stored[_META])
                prefix = f"k{committed.meta['gen']}:"
                committed.seen = {
                    name[len(prefix) :]: value
                    for name, value in stored.items()
                    if name.startswith(prefix)
                }
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
        the bytes before the returned chunk."""
        with open(self.spec.path, "rb") as handle:
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
                    return handle.read(), start, hasher
                handle.seek(0)
            return handle.read(), _Position(), hashlib.blake2b(digest_size=16)

    def _diff(
        self, records: list[RawRecord], seen: dict[str, str], *, activating: bool, quiet: bool
    ) -> tuple[list[TableEvent], dict[str, str]]:
        """Events and state changes for ``records`` against ``seen``. ``quiet``: the projection
        changed, so changed hashes are recorded without update events."""
        spec = self.spec
        latest: dict[str, tuple[RawRecord, dict[str, Any]]] = {}
        for record in records:
            key = _key_of(record, spec.key, self.problems)
            if key is None:
                continue
            row = _project(record.values, spec.columns)
            latest.pop(key, None)  # the last version wins, in the order of last versions
            latest[key] = (record, row)
        events: list[TableEvent] = []
        changes: dict[str, str] = {}
        run_existing = spec.existing_rows is ExistingRows.RUN
        for key, (record, row) in latest.items():
            content_hash = _content_hash(row)
            short = content_hash[:16]
            old = seen.get(key)
            if old == short:
                continue
            changes[key] = short
            if old is None:
                if run_existing if activating else spec.run_on_added:
                    events.append(TableEvent(key, row, content_hash, key, record.line))
            elif spec.run_on_updated and not quiet:
                dedupe = f"{key}@{short}"
                events.append(TableEvent(key, row, content_hash, dedupe, record.line, True))
        return events, changes


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


# One encoder for every row: ``json.dumps`` with options builds a new one per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _content_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(_CANONICAL.encode(row).encode("utf-8")).hexdigest()
