"""Claims with leases on the SQLite store (``ClaimStore``): the same rules as PostgreSQL's.

One node runs on a SQLite file (``automations run`` locks it), so nothing here races with
another runner; the rules are kept all the same, so that the runner has one way of working
over both stores and the contract suite checks both alike. Each write is one transaction
(``BEGIN IMMEDIATE``): the checks and the write it guards see the same rows.

- A claim makes ready runs ``running`` under a lease, oldest first; a run whose order key has
  an earlier open (``pending`` or ``running``) run waits for it.
- ``lease_token`` + 1 on every claim; a fenced write compares owner and token.
- A rescue is one ``UPDATE ... WHERE`` re-checking each row (never select-then-update); giving
  every run back at start-up (``rescue_all``) is such updates in batches, one commit each.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from automations.errors import StoreError
from automations.ports import Claimed, Enqueue, Lease
from automations.records import RunRecord, RunStatus, StepRecord
from automations.stores.codec import normalize_run
from automations.stores.sqlite_schema import (
    RUN_COLUMNS,
    STEP_COLUMNS,
    run_from_row,
    run_params,
    step_params,
    stored_run,
)

__all__ = ["SQLiteClaims"]

_N_RUN = len(RUN_COLUMNS.split(","))
_STEP_NAMES = [c.strip() for c in STEP_COLUMNS.split(",")]
_RETURNING = ", ".join(f"runs.{c.strip()}" for c in RUN_COLUMNS.split(","))

INSERT_CLAIMED = (
    f"INSERT INTO runs ({RUN_COLUMNS}, order_key, lease_owner, lease_token, lease_expires_at) "
    f"VALUES ({', '.join('?' * (_N_RUN + 4))}) ON CONFLICT (recipe, event_key) DO NOTHING"
)
#: Whether an order key has an open run (the literal statuses match ``runs_open_order``).
ORDER_KEY_OPEN = (
    "SELECT 1 FROM runs WHERE order_key = ? AND status IN ('pending', 'running') LIMIT 1"
)
_READY = (
    "SELECT r.seq FROM runs AS r WHERE r.status IN ('pending', 'running') "
    "AND r.status = 'pending' AND COALESCE(r.available_at, 0) <= :now {recipe}"
    "AND (r.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS o "
    "WHERE o.order_key = r.order_key AND o.status IN ('pending', 'running') "
    "AND o.seq < r.seq)) ORDER BY r.seq LIMIT :limit"
)
_TAKE = (
    "UPDATE runs SET status = 'running', lease_owner = :owner, "
    "lease_token = lease_token + 1, lease_expires_at = :now + :ttl "
)
CLAIM_READY = _TAKE + "WHERE seq IN (" + _READY + f") RETURNING seq, {_RETURNING}, lease_token"
CLAIM_RUN = (
    _TAKE + "WHERE id = :id AND (status = 'pending' OR (status = 'running' AND "
    f"lease_owner = :owner)) RETURNING seq, {_RETURNING}, lease_token"
)
#: The recipes with pending runs, one index probe each (a skip scan of ``runs_backlog``).
READY_RECIPES = (
    "WITH RECURSIVE r(recipe) AS ("
    " SELECT (SELECT recipe FROM runs WHERE status IN ('pending', 'running') "
    "ORDER BY recipe LIMIT 1)"
    " UNION ALL SELECT (SELECT recipe FROM runs WHERE status IN ('pending', 'running') "
    "AND recipe > r.recipe ORDER BY recipe LIMIT 1) FROM r WHERE r.recipe IS NOT NULL) "
    "SELECT recipe FROM r WHERE recipe IS NOT NULL AND EXISTS (SELECT 1 FROM runs AS p "
    "WHERE p.recipe = r.recipe AND p.status IN ('pending', 'running') "
    "AND p.status = 'pending')"
)
_HELD = "status = 'running' AND lease_owner = ? AND lease_token = ?"
HOLDS = f"SELECT 1 FROM runs WHERE id = ? AND {_HELD}"
FENCED_SENDING = (
    f"INSERT INTO steps (run_seq, {STEP_COLUMNS}) "
    f"SELECT seq, {', '.join('?' * len(_STEP_NAMES))} FROM runs "
    f"WHERE id = ? AND {_HELD} AND lease_expires_at > ? "
    "ON CONFLICT (run_seq, idx) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _STEP_NAMES[1:])
    + " WHERE steps.status NOT IN ('succeeded', 'unknown')"
)
RENEW = (
    "UPDATE runs SET lease_expires_at = :now + :ttl WHERE status = 'running' "
    "AND lease_owner = :owner AND lease_expires_at > :now RETURNING id, lease_token"
)
_GIVE_BACK = (
    "UPDATE runs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, "
    "available_at = :at "
)
RESCUE_EXPIRED = (
    _GIVE_BACK + "WHERE status = 'running' AND lease_expires_at < :now - :grace "
    "RETURNING id, lease_token"
)
#: A batch of the running runs given back at start-up (each batch its own commit).
RESCUE_ALL = (
    _GIVE_BACK + "WHERE status = 'running' AND seq IN "
    "(SELECT seq FROM runs WHERE status = 'running' LIMIT :batch)"
)
#: Runs given back per commit by ``rescue_all``: each commit holds the file's write lock for
#: some 50 ms, so another process's writer (a webhook being recorded) waits that long at most.
RESCUE_BATCH = 500
RELEASE = (
    _GIVE_BACK
    + "WHERE id = :id AND status = 'running' AND lease_owner = :owner AND "
    + ("lease_token = :token")
)
RELEASE_IDLE = (
    _GIVE_BACK + "WHERE status = 'running' AND lease_owner = :owner AND NOT EXISTS "
    "(SELECT 1 FROM steps WHERE steps.run_seq = runs.seq AND steps.status = 'sending')"
)


class SQLiteClaims:
    """``ClaimStore`` for ``SQLiteStore`` (mixed in; it uses the store's connection and lock)."""

    _db: sqlite3.Connection
    _lock: threading.RLock
    _clock: Callable[[], float]
    path: str

    def _write(self) -> Any:  # the store's ``_Transaction``
        raise NotImplementedError

    def _read(self) -> Any:  # the store's ``_Guard``
        raise NotImplementedError

    def enqueue_claimed(
        self, items: Sequence[Enqueue], owner: str, *, ttl_s: float, now: float | None = None
    ) -> list[tuple[RunRecord, bool, Lease | None]]:
        expires = self._at(now) + ttl_s
        out: list[tuple[RunRecord, bool, Lease | None]] = []
        db = self._db
        with self._write():
            for run, order_key, claim in items:
                claim = claim and run.status is RunStatus.PENDING
                if claim and order_key is not None:
                    claim = db.execute(ORDER_KEY_OPEN, (order_key,)).fetchone() is None
                if claim:
                    run = dataclasses.replace(run, status=RunStatus.RUNNING)
                params = run_params(run)
                lease_cols = (owner, 1, expires) if claim else (None, 0, None)
                try:
                    inserted = db.execute(
                        INSERT_CLAIMED, (*params, order_key, *lease_cols)
                    ).rowcount
                except sqlite3.IntegrityError as exc:
                    raise StoreError(f"a run with id {run.id} exists already") from exc
                if not inserted:
                    row = db.execute(
                        "SELECT id FROM runs WHERE recipe = ? AND event_key = ?",
                        (run.recipe, run.event_key),
                    ).fetchone()
                    out.append((self._existing(str(row[0])), False, None))
                    continue
                if run.steps:
                    stored = normalize_run(run)
                    for step in stored.steps:
                        self._put_step(step)
                else:
                    stored = stored_run(run, params)
                out.append((stored, True, Lease(run.id, owner, 1) if claim else None))
        return out

    def claim_ready(
        self,
        owner: str,
        *,
        ttl_s: float,
        limit: int,
        recipe: str | None = None,
        now: float | None = None,
    ) -> list[Claimed]:
        params: dict[str, object] = {
            "owner": owner,
            "now": self._at(now),
            "ttl": ttl_s,
            "limit": limit,
            "recipe": recipe,
        }
        statement = CLAIM_READY.format(recipe="AND r.recipe = :recipe " if recipe else "")
        with self._write():
            rows = self._db.execute(statement, params).fetchall()
        rows.sort(key=lambda row: int(row[0]))  # RETURNING has no order: as recorded
        return [_claimed(row, owner) for row in rows]

    def claim_run(
        self, run_id: str, owner: str, *, ttl_s: float, now: float | None = None
    ) -> Claimed | None:
        params = {"owner": owner, "now": self._at(now), "ttl": ttl_s, "id": run_id}
        with self._write():
            row = self._db.execute(CLAIM_RUN, params).fetchone()
        return None if row is None else _claimed(row, owner)

    def ready_recipes(self, *, now: float | None = None) -> list[str]:
        with self._read():
            return [str(r[0]) for r in self._db.execute(READY_RECIPES).fetchall()]

    def mark_sending(self, step: StepRecord, lease: Lease, *, now: float | None = None) -> bool:
        params = (*step_params(step), step.run_id, lease.owner, lease.token, self._at(now))
        with self._write():
            return bool(self._db.execute(FENCED_SENDING, params).rowcount)

    def holds(self, lease: Lease) -> bool:
        with self._read():
            row = self._db.execute(HOLDS, (lease.run_id, lease.owner, lease.token)).fetchone()
        return row is not None

    def renew(self, owner: str, *, ttl_s: float, now: float | None = None) -> dict[str, int]:
        with self._write():
            rows = self._db.execute(
                RENEW, {"now": self._at(now), "ttl": ttl_s, "owner": owner}
            ).fetchall()
        return {str(run_id): int(token) for run_id, token in rows}

    def rescue_expired(self, *, grace_s: float = 0.0, now: float | None = None) -> dict[str, int]:
        at = self._at(now)
        with self._write():
            rows = self._db.execute(
                RESCUE_EXPIRED, {"now": at, "grace": grace_s, "at": at}
            ).fetchall()
        return {str(run_id): int(token) for run_id, token in rows}

    def rescue_all(self) -> int:
        # in batches: 10,000 runs in one commit held the write lock for a second
        rescued = 0
        while True:
            with self._write():
                batch = int(
                    self._db.execute(RESCUE_ALL, {"at": None, "batch": RESCUE_BATCH}).rowcount
                )
            rescued += batch
            if batch < RESCUE_BATCH:
                return rescued

    def release(self, lease: Lease, *, available_at: float | None = None) -> bool:
        params = {
            "id": lease.run_id,
            "owner": lease.owner,
            "token": lease.token,
            "at": self._at(available_at),
        }
        with self._write():
            return bool(self._db.execute(RELEASE, params).rowcount)

    def release_idle(self, owner: str, *, now: float | None = None) -> int:
        with self._write():
            return int(
                self._db.execute(RELEASE_IDLE, {"owner": owner, "at": self._at(now)}).rowcount
            )

    def _at(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _existing(self, run_id: str) -> RunRecord:
        raise NotImplementedError

    def _put_step(self, step: StepRecord) -> None:
        raise NotImplementedError


def _claimed(row: tuple[Any, ...], owner: str) -> Claimed:
    run = run_from_row(row[:-1], ())
    return Claimed(run, Lease(run.id, owner, int(row[-1])))
