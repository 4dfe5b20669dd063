"""The layout of the SQLite run store, and how its rows map to records.

Tables (read them with any SQLite tool: ``sqlite3 runs.db``, Datasette):

- ``runs``: one row per run. ``seq`` is the insertion order; JSON values (``event``, ``row``) are
  TEXT; enums are their string values; times are REAL unix seconds; ``condition`` and ``dry_run``
  are 0/1. ``(recipe, event_key)`` is unique: one run per event.
- ``steps``: one row per action of a run, keyed by ``(run_seq, idx)`` (``run_seq`` is
  ``runs.seq``: an integer, so a step does not repeat the run's id); ``request`` and
  ``response_body`` are JSON TEXT.
- ``step_log``: a view of ``steps`` with the run's ``id`` as ``run_id``.
- ``state``: the triggers' ``(scope, key) -> value`` positions.
- ``audit``: decisions people took (replay, resolve): who (``actor``), when (``at``), what.

``PRAGMA user_version`` holds the schema version; ``MIGRATIONS`` brings an older file up to date.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import Any, cast

from automations.errors import StoreError
from automations.records import (
    AuditEntry,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    TriggerKind,
)
from automations.stores.codec import cap_text, dump_event, dump_json, load_json, stored_json

__all__ = [
    "AUDIT_COLUMNS",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "STEP_COLUMNS",
    "audit_from_row",
    "audit_params",
    "migrate",
    "run_column_value",
    "run_from_row",
    "run_params",
    "step_params",
    "stored_run",
]

#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION = 7

# The comments inside the CREATE statements are kept by SQLite: ``.schema`` shows them.
# Indexes serve list_runs newest first: see version 7.
# No statement may contain a semicolon except as its terminator (see ``migrate``).
_SCHEMA_V1 = """
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,        -- insertion order, what steps.run_seq refers to
    id TEXT NOT NULL UNIQUE,
    recipe TEXT NOT NULL,
    trigger TEXT NOT NULL,          -- table, webhook, schedule, manual
    event_key TEXT NOT NULL,        -- one run per (recipe, event_key)
    event TEXT,                     -- JSON
    created_at REAL NOT NULL,       -- unix seconds
    status TEXT NOT NULL,           -- pending, running, succeeded, failed, skipped, unknown
    recipe_hash TEXT,
    row TEXT,                       -- JSON
    condition INTEGER,              -- 1, 0, or NULL when not evaluated
    dry_run INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    replay_of TEXT,                 -- runs.id of the run this one replays
    UNIQUE (recipe, event_key)
);
CREATE INDEX runs_created ON runs (created_at);
-- seq (the rowid) orders runs as they were recorded: every index carries it, so "newest first"
-- needs no created_at column in these, and only unfinished runs are indexed by status
CREATE INDEX runs_recipe ON runs (recipe);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('pending', 'running');
CREATE TABLE steps (
    run_seq INTEGER NOT NULL REFERENCES runs (seq),
    idx INTEGER NOT NULL,           -- the action's position in the recipe, from 0
    step_id TEXT NOT NULL,
    action TEXT NOT NULL,           -- quo.send_sms, loops.send_event, http.request...
    status TEXT NOT NULL,           -- pending, sending, succeeded, failed, skipped, unknown...
    request TEXT,                   -- JSON: method, url, headers (masked), body
    http_status INTEGER,
    response_body TEXT,             -- JSON
    attempts INTEGER NOT NULL DEFAULT 0,
    duration_ms REAL,
    error TEXT,
    error_code TEXT,
    idempotency_key TEXT,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_seq, idx)
);
CREATE VIEW step_log AS
    SELECT runs.id AS run_id, steps.* FROM steps JOIN runs ON runs.seq = steps.run_seq;
CREATE TABLE state (
    scope TEXT NOT NULL,            -- table:<recipe>, schedule:<recipe>
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
"""

# Version 2 (issue 8, "replay is a decision, taken once"): a run points at its one replay, a
# step says how a person resolved its unknown outcome, and those decisions are audited. The
# backfill points each run at its newest real (not dry-run) replay recorded before.
_SCHEMA_V2 = """
ALTER TABLE runs ADD COLUMN replayed_as TEXT;
UPDATE runs SET replayed_as = (
    SELECT r.id FROM runs AS r WHERE r.replay_of = runs.id AND r.dry_run = 0
    ORDER BY r.seq DESC LIMIT 1
);
ALTER TABLE steps ADD COLUMN resolution TEXT;
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,               -- unix seconds
    actor TEXT NOT NULL,            -- who: the user, or what --by said
    action TEXT NOT NULL,           -- replay, resolve...
    run_id TEXT,                    -- runs.id (kept when the run is pruned)
    step INTEGER,                   -- steps.idx, for a decision about one step
    detail TEXT                     -- JSON
);
CREATE INDEX audit_run ON audit (run_id) WHERE run_id IS NOT NULL;
"""

# Version 3: the dispatcher reads each recipe's backlog in pages, oldest first
# (``unfinished_after``); this index holds only unfinished runs, by recipe then seq, so a page
# costs the same whatever the history or the other recipes' backlogs.
_SCHEMA_V3 = """
CREATE INDEX runs_backlog ON runs (recipe) WHERE status IN ('pending', 'running');
"""

# Version 4: ``runs --key`` finds the runs of one e-mail, phone number or event id among millions
# (``records.key_matches``): by event key (exactly, or a table row's later versions ``key@...``),
# and a schedule's runs over a table row by the part after the fire time.
_SCHEMA_V4 = """
CREATE INDEX runs_event_key ON runs (event_key);
CREATE INDEX runs_schedule_key ON runs (substr(event_key, 22)) WHERE trigger = 'schedule';
"""

# Version 5: the runs waiting for a person (``held`` by a flood brake, stopped ``unknown``), by
# status then recipe: ``count_by_recipe`` of those (the runner at start and on decisions,
# ``/metrics`` at every scrape) reads a few index entries instead of scanning a million runs
# (1.3 s -> well under 1 ms). Runs enter it only when they end that way: the intake pays nothing.
_SCHEMA_V5 = """
CREATE INDEX runs_attention ON runs (status, recipe) WHERE status IN ('held', 'unknown');
"""

# Version 6: claims with leases (``stores/sqlite_claims.py``), the same columns as PostgreSQL's.
# ``order_key`` keeps the runs of one row in order; ``lease_token`` is the fencing token, +1 on
# every claim. A run left ``running`` by a version without leases gets an expired lease, so it
# is resumed as before.
_SCHEMA_V6 = """
ALTER TABLE runs ADD COLUMN order_key TEXT;         -- recipe:rowkey, runs of one key in order
ALTER TABLE runs ADD COLUMN available_at REAL;      -- not claimed before (unix seconds)
ALTER TABLE runs ADD COLUMN lease_owner TEXT;       -- the node running it
ALTER TABLE runs ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN lease_expires_at REAL;
CREATE INDEX runs_open_order ON runs (order_key) WHERE status IN ('pending', 'running');
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE status = 'running';
UPDATE runs SET lease_expires_at = 0 WHERE status = 'running';
"""

# Version 7 (issue 12, "history stays cheap"): ``runs`` lists newest first by created_at (then
# seq, the rowid every index ends with), and every filter, alone or combined, is one index range
# read in that order, stopping at the page's limit: the time range alone (runs_created),
# by recipe, by status, by both. The status index also finds what pruning deletes. runs_recipe
# (recipe alone) is the first column of two of these.
_SCHEMA_V7 = """
CREATE INDEX runs_recipe_created ON runs (recipe, created_at);
CREATE INDEX runs_status_created ON runs (status, created_at);
CREATE INDEX runs_recipe_status_created ON runs (recipe, status, created_at);
DROP INDEX runs_recipe;
"""

#: ``MIGRATIONS[n]`` takes a database from schema version ``n`` to ``n + 1``.
MIGRATIONS: tuple[str, ...] = (
    _SCHEMA_V1,
    _SCHEMA_V2,
    _SCHEMA_V3,
    _SCHEMA_V4,
    _SCHEMA_V5,
    _SCHEMA_V6,
    _SCHEMA_V7,
)

#: The columns of ``runs`` (but ``seq``) in the order ``run_params`` gives their values.
RUN_COLUMNS = (
    "id, recipe, trigger, event_key, event, created_at, status, recipe_hash, row, "
    "condition, dry_run, error, started_at, finished_at, replay_of, replayed_as"
)
#: The columns of ``steps`` (but ``run_seq``) in the order ``step_params`` gives their values.
STEP_COLUMNS = (
    "idx, step_id, action, status, request, http_status, response_body, attempts, "
    "duration_ms, error, error_code, idempotency_key, started_at, finished_at, resolution"
)
#: The columns of ``audit`` (but ``seq``) in the order ``audit_params`` gives their values.
AUDIT_COLUMNS = "at, actor, action, run_id, step, detail"

# Dictionary lookups: calling an Enum by value is several times slower, and reads are hot.
_TRIGGERS = {kind.value: kind for kind in TriggerKind}
_RUN_STATUSES = {status.value: status for status in RunStatus}
_STEP_STATUSES = {status.value: status for status in StepStatus}


def migrate(db: sqlite3.Connection, path: str) -> None:
    """Create the schema in a new file, or bring an older one up to ``SCHEMA_VERSION``."""
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"run store {path} has schema version {version}; this version of "
            f"automations reads up to {SCHEMA_VERSION}"
        )
    if version == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while this one waited for the write lock.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for script in MIGRATIONS[version:]:
            # One statement at a time: executescript() would commit the open transaction.
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def run_params(run: RunRecord) -> tuple[object, ...]:
    """The values of ``RUN_COLUMNS`` for ``run``."""
    return (
        run.id,
        run.recipe,
        run.trigger.value,
        run.event_key,
        dump_event(run.event),
        run.created_at,
        run.status.value,
        run.recipe_hash,
        dump_event(run.row),
        run.condition,
        run.dry_run,
        cap_text(run.error),
        run.started_at,
        run.finished_at,
        run.replay_of,
        run.replayed_as,
    )


def stored_run(run: RunRecord, params: tuple[object, ...]) -> RunRecord:
    """``run`` (without steps) as it reads back from the row ``run_params(run)`` wrote."""
    event = stored_json(run.event, cast("str | None", params[4]))
    row = stored_json(run.row, cast("str | None", params[8]))
    error = cast("str | None", params[11])
    if event is run.event and row is run.row and error is run.error:
        return run
    return dataclasses.replace(run, event=event, row=row, error=error)


def step_params(step: StepRecord, request_json: str | None = None) -> tuple[object, ...]:
    """The values of ``STEP_COLUMNS`` for ``step``; ``request_json`` is ``dump_json(step.request)``
    when the caller has it already."""
    return (
        step.index,
        step.step_id,
        step.action,
        step.status.value,
        request_json if request_json is not None else dump_json(step.request),
        step.http_status,
        dump_json(step.response_body),
        step.attempts,
        step.duration_ms,
        cap_text(step.error),
        step.error_code,
        step.idempotency_key,
        step.started_at,
        step.finished_at,
        step.resolution,
    )


def run_column_value(name: str, value: object) -> object:
    """``value`` of the ``RunRecord`` field ``name`` as its column stores it."""
    if name in ("event", "row"):
        return dump_event(value)
    if isinstance(value, RunStatus | TriggerKind):
        return value.value
    return value


def run_from_row(row: tuple[Any, ...], step_rows: Sequence[tuple[Any, ...]]) -> RunRecord:
    """The run in ``row`` (``SELECT seq, RUN_COLUMNS``) with the steps in ``step_rows``."""
    run_id = row[1]
    return RunRecord(
        id=run_id,
        recipe=row[2],
        trigger=_TRIGGERS[row[3]],
        event_key=row[4],
        event=load_json(row[5]),
        created_at=row[6],
        status=_RUN_STATUSES[row[7]],
        recipe_hash=row[8],
        row=load_json(row[9]),
        condition=None if row[10] is None else bool(row[10]),
        dry_run=bool(row[11]),
        error=row[12],
        started_at=row[13],
        finished_at=row[14],
        replay_of=row[15],
        replayed_as=row[16],
        steps=tuple(step_from_row(run_id, s) for s in step_rows),
    )


def step_from_row(run_id: str, row: tuple[Any, ...]) -> StepRecord:
    """The step in ``row`` (``SELECT run_seq, STEP_COLUMNS``) of the run ``run_id``."""
    return StepRecord(
        run_id=run_id,
        index=row[1],
        step_id=row[2],
        action=row[3],
        status=_STEP_STATUSES[row[4]],
        request=load_json(row[5]),
        http_status=row[6],
        response_body=load_json(row[7]),
        attempts=row[8],
        duration_ms=row[9],
        error=row[10],
        error_code=row[11],
        idempotency_key=row[12],
        started_at=row[13],
        finished_at=row[14],
        resolution=row[15],
    )


def audit_params(entry: AuditEntry) -> tuple[object, ...]:
    """The values of ``AUDIT_COLUMNS`` for ``entry``."""
    return (
        entry.at,
        entry.actor,
        entry.action,
        entry.run_id,
        entry.step_index,
        dump_json(entry.detail),
    )


def audit_from_row(row: tuple[Any, ...]) -> AuditEntry:
    """The entry in ``row`` (``SELECT AUDIT_COLUMNS``)."""
    return AuditEntry(
        at=row[0],
        actor=row[1],
        action=row[2],
        run_id=row[3],
        step_index=row[4],
        detail=load_json(row[5]),
    )
