"""Per-key state of a keyed table scan: which rows are new or changed, remembered in the store.

Shared by every trigger that reads rows identified by a key column and must run each new row
once, and each changed row once per change: file tables (``table.py``) and database tables
scanned by key. The state is in the run store, never all in memory: a scan looks up the keys of
one batch of rows (``RowStates.compare``: one ``StateStore.get_states`` query), then, once that
batch's runs are durably recorded, writes what changed together with the scan's own position in
one ``set_state`` call (``RowStates.record``). A million keys are a million small rows in the
store's ``state`` table (primary key ``(scope, key)``), not a Python dict.

What is kept per key (entry ``k<generation>:<key>`` of the trigger's scope): the *mark*
``"<hash>.<revision>"``, where ``<hash>`` is 16 hex digits of the SHA-256 of the canonical JSON of
the columns the recipe reads (``reads``; the whole row when it reads ``@``) and ``<revision>``
counts the changes of that hash. So:

- a change in a column the recipe does not read, a new column, a reordered or renamed unread
  column leave the hash alone: nothing runs;
- an updated row's ``dedupe_key`` is ``"<key>@<16 hex of hash and revision>"``: a value changed
  back (A -> B -> A) is a new revision, so it runs again, and a crash between recording the
  run and recording the mark re-produces the same ``dedupe_key`` (the inbox de-duplicates it);
- keys are never forgotten, so a table emptied and refilled does not re-run its rows. A new
  ``generation`` (the recipe's key column changed) starts from nothing.

Marks written before revisions existed are a bare 16-hex hash of the whole (projected) row: they
are read as revision 0 and compared the old way once (``legacy``), then rewritten.

Rules, per row of a batch, against its stored mark (``RowRules``):

- no mark: record ``<hash>.0``; an event (``dedupe_key == key``) when the row is *added* and the
  recipe runs on added rows, or on a first activation with ``existing_rows: run``;
- same hash: nothing (a legacy mark is rewritten in the new form);
- another hash: record it; with ``run_on_updated`` (and not ``quiet``, not activating) that is a
  new revision and an ``updated`` event; otherwise recorded silently.

Within one batch the last row of a key is the row's newest version and the only one compared.
``quiet`` is for a recipe that now reads other columns: every hash changes, none is a change of
the row, so they are re-recorded without events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from automations.model import ExistingRows, TableSpec
from automations.ports import StateStore

__all__ = [
    "Comparison",
    "KeyedRow",
    "RowRules",
    "RowStates",
    "TableEvent",
    "content_hash",
    "revision_id",
]


@dataclass(frozen=True, slots=True)
class TableEvent:
    """One row to run: new (``dedupe_key == key``) or changed in a column the recipe reads
    (``dedupe_key == f"{key}@<16 hex digits of its hash and revision>"``, ``updated`` true)."""

    key: str
    #: The row (projected to ``TableSpec.columns`` when set). CSV values are strings.
    row: dict[str, Any]
    #: SHA-256 (hex) of the row's canonical JSON.
    content_hash: str
    dedupe_key: str
    #: Where the row is: for a file, the 1-based line of its first physical line (0: unknown).
    line: int
    updated: bool = False


@dataclass(frozen=True, slots=True)
class KeyedRow:
    """A row as read, with its key (already checked: a non-empty string) and where it was."""

    key: str
    #: The row as a run sees it (projected to ``columns:`` when the recipe has them).
    row: dict[str, Any]
    line: int = 0


@dataclass(frozen=True, slots=True)
class RowRules:
    """Which rows become events."""

    run_on_added: bool = True
    run_on_updated: bool = False
    #: On a first activation, whether the rows already there run (``existing_rows: run``).
    run_existing: bool = False

    @classmethod
    def of(cls, spec: TableSpec) -> RowRules:
        return cls(spec.run_on_added, spec.run_on_updated, spec.existing_rows is ExistingRows.RUN)


@dataclass(slots=True)
class Comparison:
    """What one batch of rows gives: its events, and the marks to record once they are durable
    (``key -> mark``; a key left out is unchanged)."""

    events: list[TableEvent] = field(default_factory=list)
    changes: dict[str, str] = field(default_factory=dict)


class RowStates:
    """The per-key state of one keyed scan, kept in ``state`` under ``scope``.

    ``generation`` separates the keys of different key columns (``k<generation>:<key>``);
    ``reads`` are the columns the recipe reads (``None``: the whole row). Stateless between
    calls (safe to create per scan); ``compare`` and ``record`` each make one store call. A
    subclass may override ``digest`` (how a row's read columns are hashed; database tables
    leave out the columns they write back).
    """

    def __init__(
        self,
        state: StateStore,
        scope: str,
        generation: int,
        reads: Collection[str] | None,
        rules: RowRules,
    ) -> None:
        self.state = state
        self.scope = scope
        self.generation = generation
        self.reads = sorted(reads) if reads is not None else None
        self.rules = rules
        self._prefix = f"k{generation}:"
        #: The mark's hash is the row's content hash (``digest`` not overridden, whole row).
        self._whole_row = reads is None and type(self).digest is RowStates.digest

    def entry(self, key: str) -> str:
        """The state entry holding ``key``'s mark."""
        return self._prefix + key

    def marks(self, keys: Sequence[str]) -> dict[str, str]:
        """The stored marks of those of ``keys`` that have one (one query)."""
        found = self.state.get_states(self.scope, [self._prefix + key for key in keys])
        cut = len(self._prefix)
        return {entry[cut:]: mark for entry, mark in found.items()}

    def compare(
        self,
        rows: Iterable[KeyedRow],
        *,
        activating: bool = False,
        quiet: bool = False,
        pending: Mapping[str, str] | None = None,
    ) -> Comparison:
        """The events and mark changes of one batch of ``rows``, against the stored marks.

        ``activating``: the first activation (rows already there follow ``run_existing``; a key
        met again in the same activation is recorded silently). ``quiet``: record changed hashes
        without events. ``pending``: marks of earlier batches of the same scan not recorded
        yet, which take precedence over the store's."""
        latest: dict[str, KeyedRow] = {}
        for row in rows:
            latest.pop(row.key, None)  # the last version wins, in the order of last versions
            latest[row.key] = row
        stored = self.marks(list(latest))
        if pending:
            stored.update((key, pending[key]) for key in latest if key in pending)
        out = Comparison()
        rules = self.rules
        for key, item in latest.items():
            # the whole row's hash is the mark's when the recipe reads it all: hashed once
            whole = content_hash(item.row) if self._whole_row else None
            digest = whole[:16] if whole is not None else self.digest(item.row)
            old = stored.get(key)
            if old is None:
                out.changes[key] = f"{digest}.0"
                if rules.run_existing if activating else rules.run_on_added:
                    full = whole or content_hash(item.row)
                    out.events.append(TableEvent(key, item.row, full, key, item.line))
                continue
            old_digest, dot, rev_text = old.partition(".")
            revision = int(rev_text) if dot and rev_text.isdigit() else 0
            # a bare mark (from before revisions) holds the hash of the whole (projected) row
            unchanged = old_digest == (digest if dot else _whole(item.row))
            if unchanged or quiet or activating or not rules.run_on_updated:
                mark = f"{digest}.{revision}"
                if mark != old:
                    out.changes[key] = mark
                continue
            revision += 1
            out.changes[key] = f"{digest}.{revision}"
            dedupe = f"{key}@{revision_id(digest, revision)}"
            full = whole or content_hash(item.row)
            out.events.append(TableEvent(key, item.row, full, dedupe, item.line, True))
        return out

    def record(self, changes: Mapping[str, str], also: Iterable[tuple[str, str]] = ()) -> None:
        """Store ``changes`` (``key -> mark``) and the scope's other entries ``also`` (the scan's
        position) in one ``set_state`` call: one transaction. Call it only once the events of
        the batch that produced ``changes`` are durably recorded."""
        items = list(also)
        items.extend((self._prefix + key, mark) for key, mark in changes.items())
        if items:
            self.state.set_state(self.scope, items)

    def digest(self, row: Mapping[str, Any]) -> str:
        """16 hex digits of the hash of what the recipe reads of ``row``."""
        if self.reads is None:
            return content_hash(row)[:16]
        return content_hash({name: row.get(name) for name in self.reads})[:16]


def revision_id(digest: str, revision: int) -> str:
    """An updated row's event identity: its hash and revision, as 16 hex digits (the form the
    runner's order key expects)."""
    return hashlib.blake2b(f"{digest}.{revision}".encode(), digest_size=8).hexdigest()


# One encoder for every row: ``json.dumps`` with options builds a new one per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``row``'s canonical JSON (sorted keys, compact, UTF-8)."""
    return hashlib.sha256(_CANONICAL.encode(row).encode("utf-8")).hexdigest()


def _whole(row: Mapping[str, Any]) -> str:
    return content_hash(row)[:16]
