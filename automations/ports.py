"""The engine's ports: the small abstract interfaces that adapters implement.

- ``RunStore`` (``automations/stores/``): the durable inbox and audit log in one. A run is
  created ``pending`` when its event arrives (that *is* the inbox entry), claimed by a worker,
  and each step is written before its request leaves and again when its outcome is known.
  Decisions people take on runs (replay, resolve) are kept in the same store as
  ``AuditEntry``s: who, when, what.
- ``StateStore`` (same adapters): small persisted values the triggers need across restarts
  (a table's position and, per row key, the hash of what the recipe reads, looked up a batch
  of keys at a time: ``triggers.table_state``; a schedule's last fire time).
- ``RateGate`` (``automations/stores/rate_gate.py``): the slot book of each provider key shared
  by every node that sends with it (GCRA, one row per key in PostgreSQL).
- ``Pacer`` (``automations/ratelimit.py`` in one process, ``automations/connections/pacing.py``
  across nodes through a ``RateGate``): paces the requests of one provider key.
- ``Leaders`` (``automations/stores/leaders.py``): named leader leases with a term, so one node
  does the work that needs doing once (schedules, table scans, pruning).
- ``ClaimStore`` (same adapters): claims with leases, so that several runners (nodes) can share
  one inbox: a node claims ready runs, renews its leases, and every write that matters is fenced
  by the lease's token; a rescue returns the runs of a node that stopped renewing to ``pending``.

Every adapter has an in-memory version, and one contract test suite runs over all of them.
Methods are synchronous: SQLite calls take microseconds, and keeping them synchronous makes
"written before sent" a plain sequence of statements.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from automations.records import (
    AuditEntry,
    RunFilter,
    RunPage,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
)

if TYPE_CHECKING:
    from automations.ratelimit import Slot

__all__ = [
    "ClaimStore",
    "Claimed",
    "Enqueue",
    "Inbox",
    "Leaders",
    "Lease",
    "Pacer",
    "RateGate",
    "RunStore",
    "StateStore",
    "Store",
    "check_end_hold",
]


class RunStore(ABC):
    """Durable inbox + audit log."""

    @abstractmethod
    def enqueue(self, run: RunRecord) -> tuple[RunRecord, bool]:
        """Record ``run`` (status ``pending``) unless a run with the same ``(recipe, event_key)``
        exists. Returns the stored run and whether it was new. Durable when it returns."""

    @abstractmethod
    def enqueue_many(self, runs: Sequence[RunRecord]) -> list[tuple[RunRecord, bool]]:
        """``enqueue`` for a batch, in one transaction."""

    @abstractmethod
    def claim(
        self, run_id: str, recipe_hash: str, *, lease: Lease | None = None, **fields: object
    ) -> RunRecord | None:
        """Mark a ``pending`` (or, when resuming after a crash, ``running``) run as ``running``
        with the recipe version that runs it, setting ``fields`` (as ``update_run``: ``row``,
        ``condition``, ``dry_run``) in the same write. Returns ``None`` if it is final already.

        With ``lease`` (a runner's), the write is fenced: it is made only while the run is
        ``running`` under that lease (owner and token), else ``None``: the lease was lost."""

    @abstractmethod
    def unfinished(self) -> list[RunRecord]:
        """Runs that are ``pending`` or ``running``, in the order recorded: what a restart
        resumes."""

    def unfinished_after(self, recipe: str, after: str | None, limit: int) -> list[RunRecord]:
        """Up to ``limit`` runs of ``recipe`` that are ``pending`` or ``running``, recorded after
        the run ``after`` (from the first when ``None``, or when ``after`` is gone), oldest
        first: the dispatcher reads the backlog in pages like this, never whole. Steps may be
        left out (``claim`` returns them)."""
        runs = [r for r in self.unfinished() if r.recipe == recipe]
        ids = [r.id for r in runs]
        start = ids.index(after) + 1 if after in ids else 0
        return runs[start : start + limit]

    def unfinished_counts(self) -> dict[str, int]:
        """How many runs each recipe has ``pending`` or ``running`` (recipes with none are
        left out)."""
        counts: dict[str, int] = {}
        for run in self.unfinished():
            counts[run.recipe] = counts.get(run.recipe, 0) + 1
        return counts

    @abstractmethod
    def update_run(self, run_id: str, **fields: object) -> None:
        """Set fields of a run (``status``, ``row``, ``condition``, ``error``, ...)."""

    @abstractmethod
    def put_step(self, step: StepRecord) -> None:
        """Insert or replace the step ``(step.run_id, step.index)``. Durable when it returns."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """The run with its steps; raises ``StoreError`` for an unknown id. Accepts a unique
        prefix of an id."""

    @abstractmethod
    def find_run(self, recipe: str, event_key: str) -> RunRecord | None:
        """The run recorded for this event, if any."""

    def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        """Runs matching ``flt``, newest first (``RunFilter``), each with its steps."""
        return self.list_runs_page(flt).runs

    @abstractmethod
    def list_runs_page(self, flt: RunFilter) -> RunPage:
        """``list_runs`` with the keyset cursor of the next page: pass it as
        ``RunFilter(before=page.next)`` (same filter) to read on. Each page costs the same
        however deep it is (no OFFSET)."""

    @abstractmethod
    def prune(self, *, now: float, keep_succeeded_s: float, keep_failed_s: float) -> int:
        """Delete final runs older than their retention (failed, unknown: ``keep_failed_s``;
        others: ``keep_succeeded_s``). Returns how many were deleted."""

    @abstractmethod
    def end_hold(
        self, recipe: str, status: RunStatus, *, now: float, error: str | None = None
    ) -> int:
        """Move every ``held`` run of ``recipe`` to ``status``: ``pending`` (released: it runs)
        or ``discarded`` (final at ``now``, with ``error`` saying why). One transaction; returns
        how many runs moved. ``ValueError`` for any other status."""

    @abstractmethod
    def add_audit(self, entry: AuditEntry) -> None:
        """Record a person's decision (kept when its run is pruned). Durable when it returns."""

    @abstractmethod
    def audit_log(self, run_id: str | None = None, *, limit: int = 100) -> list[AuditEntry]:
        """The decisions recorded (about ``run_id`` only, when given), oldest first; the newest
        ``limit`` of them."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def steps_done_since(self, since: float) -> list[tuple[str, str, str, float]]:
        """``(recipe, action, run id, finished at)`` of each step that ended (sent, failed,
        unknown, or rendered in a dry run; not skipped) at or after ``since``: what ``status``
        counts as sent in the last minute. Stores read only the recent end of the log for it."""
        return [
            (run.recipe, step.action, run.id, step.finished_at)
            for run in self.list_runs(RunFilter(limit=1 << 62))
            for step in run.steps
            if step.finished_at is not None
            and step.finished_at >= since
            and step.status not in _NOT_DONE
        ]

    def count_by_recipe(self, status: RunStatus) -> dict[str, int]:
        """How many runs with ``status`` each recipe has (recipes with none are left out)."""
        counts: dict[str, int] = {}
        for run in self.list_runs(RunFilter(status=status, limit=1 << 62)):
            counts[run.recipe] = counts.get(run.recipe, 0) + 1
        return counts

    def count(self, status: RunStatus | None = None) -> int:
        """How many runs (optionally with one status) the store holds."""
        return len(self.list_runs(RunFilter(status=status, limit=1 << 62)))


#: Step statuses that are not an outcome ``steps_done_since`` counts.
_NOT_DONE = frozenset({StepStatus.PENDING, StepStatus.SENDING, StepStatus.SKIPPED})


def check_end_hold(status: RunStatus) -> None:
    """``end_hold`` moves held runs to ``pending`` or ``discarded`` only."""
    if status not in (RunStatus.PENDING, RunStatus.DISCARDED):
        raise ValueError(f"held runs become pending or discarded, not {status.value}")


class StateStore(ABC):
    """Persisted trigger positions, keyed by ``(scope, key)``; ``scope`` is usually
    ``"table:<recipe>"`` or ``"schedule:<recipe>"``."""

    @abstractmethod
    def get_state(self, scope: str, key: str) -> str | None: ...

    @abstractmethod
    def set_state(self, scope: str, items: Iterable[tuple[str, str]]) -> None:
        """Set several keys of one scope in one transaction."""

    @abstractmethod
    def all_state(self, scope: str) -> dict[str, str]: ...

    def get_states(self, scope: str, keys: Sequence[str]) -> dict[str, str]:
        """The values of those of ``keys`` that are set in ``scope`` (the others are left out),
        in one query per call whatever the scope holds: how a keyed scan looks up one batch of
        rows among millions of keys without loading them (``triggers.table_state``). Stores
        override this default, which asks for each key in turn."""
        found = {}
        for key in dict.fromkeys(keys):
            value = self.get_state(scope, key)
            if value is not None:
                found[key] = value
        return found


@dataclass(frozen=True, slots=True)
class Lease:
    """One node's hold on one run. ``token`` names this ownership: every claim of the run
    increments it, so a write fenced by an older token (a node that lost the run) is refused."""

    run_id: str
    owner: str
    token: int


@dataclass(frozen=True, slots=True)
class Claimed:
    """A run claimed by a node (``running`` in the store), and its lease."""

    run: RunRecord
    lease: Lease


#: An event to record: the run, its order key (runs sharing one execute one at a time, in the
#: order recorded; ``None``: no order) and whether the recording node claims it at once.
Enqueue = tuple[RunRecord, str | None, bool]


class ClaimStore(ABC):
    """Claims with leases over the shared inbox (the rules: ``docs/scaling.md``).

    - A claim takes ready runs (``pending``, available, the earliest open run of their order
      key) oldest first, makes them ``running`` under a lease of ``owner`` until
      ``now + ttl_s``, and increments each run's ``lease_token``; two nodes never get one run.
    - Every write that matters is fenced by the lease: ``mark_sending`` (the write before a
      request that must not be repeated) only while the lease is held *and unexpired*;
      ``claim(lease=...)`` and the writes made after ``holds`` inside ``transaction()`` while the
      token is current (a late outcome of a node that lost the run is not applied).
    - ``renew`` extends a node's unexpired leases; ``rescue_expired`` returns the runs whose lease
      expired to ``pending`` in one guarded write (never select-then-update), so a run that
      finished or was renewed meanwhile is left alone.

    ``now`` is unix seconds; ``None`` means the store's clock (PostgreSQL: the server's, one
    clock for every node). Tests pass it, so expiry needs no sleeping.
    """

    @abstractmethod
    def enqueue_claimed(
        self, items: Sequence[Enqueue], owner: str, *, ttl_s: float, now: float | None = None
    ) -> list[tuple[RunRecord, bool, Lease | None]]:
        """``enqueue_many`` with order keys, in one transaction, claiming for ``owner`` each new
        run asked for whose order key has no earlier open run (the claim is the insert itself:
        the run is recorded ``running`` under the lease). Returns ``(stored, is_new, lease)``."""

    @abstractmethod
    def claim_ready(
        self,
        owner: str,
        *,
        ttl_s: float,
        limit: int,
        recipe: str | None = None,
        now: float | None = None,
    ) -> list[Claimed]:
        """Up to ``limit`` ready runs (of ``recipe`` only, when given), oldest first, now
        ``running`` under leases of ``owner``. Steps are not read (``claim`` returns them)."""

    @abstractmethod
    def claim_run(
        self, run_id: str, owner: str, *, ttl_s: float, now: float | None = None
    ) -> Claimed | None:
        """Claim one run by id again (a run this node deferred, or holds already): ``pending``
        whatever its ``available_at``, or ``running`` under a lease of ``owner``; ``None``
        otherwise (another node has it, or it is final)."""

    @abstractmethod
    def ready_recipes(self, *, now: float | None = None) -> list[str]:
        """The recipes with ``pending`` runs (some may not be ready yet): where a claim loop
        looks. Reads an index, not the runs."""

    @abstractmethod
    def mark_sending(self, step: StepRecord, lease: Lease, *, now: float | None = None) -> bool:
        """Write ``step`` (status ``sending``) only while ``lease`` is held and unexpired at
        ``now``, and never over a final outcome. ``False``: do not send."""

    @abstractmethod
    def holds(self, lease: Lease) -> bool:
        """Whether the run is ``running`` under ``lease`` (expired or not). Inside
        ``transaction()`` the answer stands until the commit (the row stays locked), so the
        writes that follow are fenced by it."""

    @abstractmethod
    def renew(self, owner: str, *, ttl_s: float, now: float | None = None) -> dict[str, int]:
        """Extend ``owner``'s unexpired leases to ``now + ttl_s``: run id -> token of each lease
        kept. A run missing from the answer is lost."""

    @abstractmethod
    def rescue_expired(self, *, grace_s: float = 0.0, now: float | None = None) -> dict[str, int]:
        """Return runs whose lease expired more than ``grace_s`` before ``now`` to ``pending``
        (any node may call it): run id -> the token that expired."""

    @abstractmethod
    def rescue_all(self) -> int:
        """Return every ``running`` run to ``pending``, leased or not: for a store that one node
        owns alone (a SQLite file), at its start. Returns how many."""

    @abstractmethod
    def release(self, lease: Lease, *, available_at: float | None = None) -> bool:
        """Give a run back (``pending`` again, ready at ``available_at``, default now) if
        ``lease`` still holds it."""

    @abstractmethod
    def release_idle(self, owner: str, *, now: float | None = None) -> int:
        """Give back every run ``owner`` holds that has no step ``sending`` (a graceful stop:
        another node continues them at once). Returns how many."""


class Store(RunStore, StateStore, ClaimStore):
    """One database holding both runs and trigger state: what the runner is given."""

    #: Whether several runners (nodes) may share this store at once (PostgreSQL). A store one
    #: node owns alone (a SQLite file, locked by ``automations run``) resumes at its start every
    #: run it finds ``running``, without waiting for leases to expire.
    shared: bool = False

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes into one commit (a no-op where every write is already atomic). Never wrap
        a send in one: writes inside are durable only when the block ends."""
        return nullcontext()

    def notify_pending(self) -> None:
        """Tell the other nodes sharing this store that runs wait unclaimed (a wake-up hint:
        PostgreSQL ``NOTIFY``, delivered when the current transaction commits; ``stores/wakeup``
        listens). A no-op where one process owns the store."""


class Inbox(ABC):
    """Where the webhook intake process records events (``automations/intake``): a SQLite run
    store's inbox file (``stores/sqlite_inbox``), or the shared store itself (PostgreSQL)."""

    @abstractmethod
    def record(self, items: Sequence[tuple[RunRecord, str | None]]) -> list[tuple[RunRecord, bool]]:
        """Record each ``(run, order_key)`` durably in one commit, unless its event has a run
        already. Returns each run and whether it is new; a repeated event's run carries the id
        of the run recorded first."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the database."""


class RateGate(ABC):
    """Where the next request slot of each provider key is decided, for every node at once.

    GCRA with no burst, backed by a sliding window: a key's slots are ``interval_s`` apart, each
    taken by one request, a slot not taken when its time comes is gone (an idle key saves
    nothing up), and a slot is never less than ``count * interval_s`` after the one ``count``
    places before it, as that one really went (``report_late``). ``key`` is the connection's
    limiter key (a hash of its credential and host, never the credential). ``now`` (unix
    seconds) is for tests; by default the gate's own clock decides (the database server's: one
    clock for all nodes). Raises ``StoreError`` when the gate cannot be reached: then nothing
    may be sent."""

    @abstractmethod
    def reserve(
        self, key: str, interval_s: float, count: int, *, now: float | None = None
    ) -> tuple[float, int]:
        """Take ``key``'s next free slot. Returns the seconds from now until it (0 when it is
        now) and its number (for ``report_late``)."""

    @abstractmethod
    def report_late(self, key: str, number: int, late_s: float) -> None:
        """Slot ``number`` of ``key`` went ``late_s`` seconds after its time: the slots that
        follow it in the window keep their distance from when it really went."""

    @abstractmethod
    def hold(self, key: str, seconds: float, *, now: float | None = None) -> None:
        """Start no slot of ``key`` before ``seconds`` from now (the provider said so:
        ``Retry-After``, a used-up window); a shorter hold never shortens a longer one."""


class Pacer(ABC):
    """Paces the requests of one provider key: ``acquire`` waits for the next slot, ``hold``
    releases nothing for a while. Callers are served in the order they called."""

    #: Requests per ``per`` seconds at most.
    rate: float

    @abstractmethod
    async def acquire(self) -> Slot:
        """Wait for this caller's slot."""

    @abstractmethod
    def hold(self, seconds: float) -> None:
        """Release nothing for ``seconds`` from now (a provider's pacing signal)."""

    @property
    @abstractmethod
    def released(self) -> int:
        """How many slots were handed out here."""


class Leaders(ABC):
    """Named leader leases: at most one owner per name at a time, with a term that grows by one
    at each change of owner (a fencing token). ``now`` (unix seconds) is for tests; by default
    the leases' own clock decides (the database server's)."""

    @abstractmethod
    def acquire(
        self, name: str, owner: str, ttl_s: float, *, now: float | None = None
    ) -> int | None:
        """Lead ``name`` for ``ttl_s`` seconds: taken when free or expired, renewed when
        ``owner`` holds it. Returns the term, or ``None`` while another owner holds it."""

    @abstractmethod
    def renew(
        self, name: str, owner: str, term: int, ttl_s: float, *, now: float | None = None
    ) -> bool:
        """Extend ``owner``'s unexpired lease of ``name`` in ``term`` by ``ttl_s`` from now;
        ``False`` when it is not held so (lost, expired, another term)."""

    @abstractmethod
    def release(self, name: str, owner: str) -> bool:
        """Give up ``owner``'s lease of ``name`` now (another node may take it at once);
        ``False`` when ``owner`` did not hold it. The term is kept: the next owner's is
        higher."""

    @abstractmethod
    def leader(self, name: str, *, now: float | None = None) -> tuple[str, int] | None:
        """``(owner, term)`` of the unexpired lease of ``name``, if any."""
