"""Claims with leases on the PostgreSQL store (``ClaimStore``): several runners on one database.

The rules they enforce are written next to their SQL, in ``postgres_sql``. Each method is one
statement (``enqueue_claimed``: one transaction), made on a pooled connection, or on the
thread's transaction inside ``transaction()`` (``holds`` locks the run's row until its commit).

Every time-dependent call takes ``now`` (unix seconds); ``None`` uses the server's clock, the
one clock every node shares, so expiry is tested without sleeping and nodes' clocks may differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from automations.errors import StoreError
from automations.ports import Claimed, Enqueue, Lease
from automations.records import RunRecord, RunStatus, StepRecord
from automations.stores import postgres_sql as sql
from automations.stores.codec import normalize_run
from automations.stores.sqlite_schema import run_from_row, run_params, step_params, stored_run

__all__ = ["PostgresClaims"]


class PostgresClaims:
    """``ClaimStore`` for ``PostgresStore`` (mixed in; it uses the store's cursors)."""

    def _cursor(self, *, atomic: bool = False) -> AbstractContextManager[psycopg.Cursor[Any]]:
        raise NotImplementedError

    def _put_step(self, cur: psycopg.Cursor[Any], step: StepRecord) -> None:
        raise NotImplementedError

    def _select_one(
        self, cur: psycopg.Cursor[Any], query: str, params: Sequence[object]
    ) -> RunRecord | None:
        raise NotImplementedError

    def enqueue_claimed(
        self, items: Sequence[Enqueue], owner: str, *, ttl_s: float, now: float | None = None
    ) -> list[tuple[RunRecord, bool, Lease | None]]:
        ordered = any(claim and key is not None for _, key, claim in items)
        atomic = len(items) > 1 or ordered or any(r.steps for r, _, _ in items)
        out: list[tuple[RunRecord, bool, Lease | None]] = []
        with self._cursor(atomic=atomic) as cur:
            for run, order_key, claim in items:
                claim = claim and run.status is RunStatus.PENDING
                if claim and order_key is not None:
                    cur.execute(sql.LOCK_ORDER_KEY, (order_key,))
                    claim = cur.execute(sql.ORDER_KEY_OPEN, (order_key,)).fetchone() is None
                if claim:
                    run = _running(run)
                params = run_params(run)
                lease_cols = (owner, 1, now, ttl_s) if claim else (None, 0, None, None)
                try:
                    inserted = cur.execute(
                        sql.INSERT_CLAIMED, (*params, order_key, *lease_cols)
                    ).fetchone()
                except pg_errors.UniqueViolation as exc:
                    raise StoreError(f"a run with id {run.id} exists already") from exc
                if inserted is None:
                    # a new statement: a row committed by another transaction meanwhile is
                    # visible to it (READ COMMITTED), not to the insert's own snapshot
                    existing = self._select_one(cur, sql.RUN_BY_EVENT, (run.recipe, run.event_key))
                    assert existing is not None  # the insert conflicted with it
                    out.append((existing, False, None))
                    continue
                if run.steps:
                    stored = normalize_run(run)
                    for step in stored.steps:
                        self._put_step(cur, step)
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
        params = {"now": now, "limit": limit, "owner": owner, "ttl": ttl_s, "recipe": recipe}
        statement = sql.CLAIM_READY.format(recipe=sql.CLAIM_RECIPE if recipe else "")
        with self._cursor() as cur:
            rows = cur.execute(statement, params).fetchall()
        # UPDATE ... RETURNING has no order: the runs come back in the order recorded (seq)
        rows.sort(key=lambda row: int(row[0]))
        return [_claimed(row, owner) for row in rows]

    def claim_run(
        self, run_id: str, owner: str, *, ttl_s: float, now: float | None = None
    ) -> Claimed | None:
        params = {"now": now, "owner": owner, "ttl": ttl_s, "id": run_id}
        with self._cursor() as cur:
            row = cur.execute(sql.CLAIM_RUN, params).fetchone()
        return None if row is None else _claimed(row, owner)

    def ready_recipes(self, *, now: float | None = None) -> list[str]:
        with self._cursor() as cur:
            return [str(r[0]) for r in cur.execute(sql.READY_RECIPES).fetchall()]

    def mark_sending(self, step: StepRecord, lease: Lease, *, now: float | None = None) -> bool:
        params = (*step_params(step), step.run_id, lease.owner, lease.token, now)
        with self._cursor() as cur:
            return cur.execute(sql.FENCED_SENDING, params).fetchone() is not None

    def holds(self, lease: Lease) -> bool:
        params = {"id": lease.run_id, "owner": lease.owner, "token": lease.token}
        with self._cursor() as cur:
            return cur.execute(sql.HOLDS, params).fetchone() is not None

    def renew(self, owner: str, *, ttl_s: float, now: float | None = None) -> dict[str, int]:
        with self._cursor() as cur:
            rows = cur.execute(sql.RENEW_LEASES, {"now": now, "ttl": ttl_s, "owner": owner})
            return dict(_tokens(rows.fetchall()))

    def rescue_expired(self, *, grace_s: float = 0.0, now: float | None = None) -> dict[str, int]:
        params = {"now": now, "grace": grace_s, "at": now}
        with self._cursor() as cur:
            return dict(_tokens(cur.execute(sql.RESCUE_EXPIRED, params).fetchall()))

    def rescue_all(self) -> int:
        with self._cursor() as cur:
            cur.execute(sql.RESCUE_ALL, {"now": None, "at": None})
            return int(cur.rowcount)

    def release(self, lease: Lease, *, available_at: float | None = None) -> bool:
        params = {
            "id": lease.run_id,
            "owner": lease.owner,
            "token": lease.token,
            "at": available_at,
            "now": None,
        }
        with self._cursor() as cur:
            cur.execute(sql.RELEASE_LEASE, params)
            return cur.rowcount == 1

    def release_idle(self, owner: str, *, now: float | None = None) -> int:
        with self._cursor() as cur:
            cur.execute(sql.RELEASE_IDLE, {"owner": owner, "at": now, "now": now})
            return int(cur.rowcount)


def _running(run: RunRecord) -> RunRecord:
    return dataclasses.replace(run, status=RunStatus.RUNNING)


def _claimed(row: tuple[Any, ...], owner: str) -> Claimed:
    run = run_from_row(row[:-1], ())
    return Claimed(run, Lease(run.id, owner, int(row[-1])))


def _tokens(rows: list[tuple[Any, ...]]) -> Iterator[tuple[str, int]]:
    for run_id, token in rows:
        yield str(run_id), int(token)
