"""Claims with leases on the PostgreSQL store: the ground for several runners on one database.

Not used by the runner yet (it runs one node per database, see docs/scaling.md); these are the
statements a multi-node dispatcher builds on, tested on their own (``tests/stores``). The rules
they enforce are written next to their SQL, in ``postgres_sql``.

Every time-dependent call takes ``now`` (unix seconds) as a parameter, so expiry is tested
without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass

from automations.records import RunRecord, StepRecord
from automations.stores import postgres_sql as sql
from automations.stores.postgres import PostgresStore
from automations.stores.sqlite_schema import run_from_row, step_params

__all__ = ["Claimed", "Leases"]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A run claimed by a node, and the fencing token of that claim."""

    run: RunRecord
    token: int


class Leases:
    """Claims, renewals, fenced ``sending`` writes and rescues for the node ``owner``."""

    def __init__(self, store: PostgresStore, owner: str, *, ttl_s: float = 30.0) -> None:
        self.store = store
        self.owner = owner
        self.ttl_s = ttl_s

    def claim_ready(self, *, now: float, limit: int = 10) -> list[Claimed]:
        """Up to ``limit`` ready runs (pending, available, first open run of their order key),
        oldest first, now ``running`` under a lease of this node until ``now + ttl_s``. Steps
        are not read (a resumed run's are read by ``get_run``)."""
        params = {"now": now, "limit": limit, "owner": self.owner, "ttl": self.ttl_s}
        with self.store._cursor() as cur:
            rows = cur.execute(sql.CLAIM_READY, params).fetchall()
        # UPDATE ... RETURNING has no order: the runs come back in the order recorded (seq)
        rows.sort(key=lambda row: int(row[0]))
        return [Claimed(run_from_row(row[:-1], ()), int(row[-1])) for row in rows]

    def mark_sending(self, step: StepRecord, token: int, *, now: float) -> bool:
        """Write ``step`` (status ``sending``) only while this node holds the run's lease with
        ``token`` and it has not expired at ``now``; ``False``: the lease is lost (or the step
        is final already): do not send."""
        with self.store._cursor() as cur:
            row = cur.execute(
                sql.FENCED_SENDING, (*step_params(step), step.run_id, self.owner, token, now)
            ).fetchone()
        return row is not None

    def renew(self, *, now: float) -> dict[str, int]:
        """Extend this node's unexpired leases to ``now + ttl_s``: run id -> token of each lease
        kept. A run missing from the answer is lost: stop it before its next send."""
        params = {"now": now, "ttl": self.ttl_s, "owner": self.owner}
        with self.store._cursor() as cur:
            rows = cur.execute(sql.RENEW_LEASES, params).fetchall()
        return {str(run_id): int(token) for run_id, token in rows}

    def rescue_expired(self, *, now: float, grace_s: float = 0.0) -> dict[str, int]:
        """Return runs whose lease expired more than ``grace_s`` before ``now`` to ``pending``
        (any node may call it): run id -> the token that expired."""
        with self.store._cursor() as cur:
            rows = cur.execute(sql.RESCUE_EXPIRED, {"now": now, "grace": grace_s}).fetchall()
        return {str(run_id): int(token) for run_id, token in rows}

    def release(self, run_id: str, token: int, *, available_at: float) -> bool:
        """Give a claimed run back (``pending`` again, ready at ``available_at``), if this node
        still holds it with ``token``: a graceful stop, or a recipe not loaded here."""
        params = {"id": run_id, "owner": self.owner, "token": token, "available_at": available_at}
        with self.store._cursor() as cur:
            cur.execute(sql.RELEASE_LEASE, params)
            return cur.rowcount == 1

    def set_order_key(self, run_id: str, order_key: str | None) -> None:
        """Keep ``run_id`` behind the earlier open runs of ``order_key`` (``recipe:rowkey``)."""
        with self.store._cursor() as cur:
            cur.execute(sql.SET_ORDER_KEY, (order_key, run_id))
