"""The run store and trigger state in memory: for tests, dry runs and ``automations exec``.

Same semantics as ``SQLiteStore`` (the contract tests run over both), without durability:
values pass through the same codec, so what reads back is what SQLite would return.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from automations.errors import StoreError
from automations.ports import Claimed, Enqueue, Lease, Store, check_end_hold
from automations.records import (
    AuditEntry,
    RunFilter,
    RunPage,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    key_matches,
)
from automations.stores.codec import (
    check_run_changes,
    normalize_event,
    normalize_json,
    normalize_run,
    normalize_step,
)

__all__ = ["MemoryStore"]

_FAILED_WINDOW = frozenset({RunStatus.FAILED, RunStatus.UNKNOWN})
_UNFINISHED = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
_FINAL_STEPS = frozenset({StepStatus.SUCCEEDED, StepStatus.UNKNOWN})


@dataclasses.dataclass(slots=True)
class _Hold:
    """A run's claim columns (``order_key``, ``available_at``, ``lease_*`` in SQLite)."""

    order_key: str | None = None
    available_at: float | None = None
    owner: str | None = None
    token: int = 0
    expires_at: float | None = None


@dataclasses.dataclass
class _Tables:
    """Everything the store holds; copied whole to roll back a ``transaction()``."""

    #: Runs without their steps, in insertion order (``seq``).
    runs: dict[str, RunRecord] = dataclasses.field(default_factory=dict)
    seq: dict[str, int] = dataclasses.field(default_factory=dict)
    steps: dict[str, dict[int, StepRecord]] = dataclasses.field(default_factory=dict)
    by_event: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    state: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    audit: list[AuditEntry] = dataclasses.field(default_factory=list)
    holds: dict[str, _Hold] = dataclasses.field(default_factory=dict)
    next_seq: int = 1

    def copy(self) -> _Tables:
        return _Tables(
            holds={k: dataclasses.replace(v) for k, v in self.holds.items()},
            audit=list(self.audit),
            runs=dict(self.runs),
            seq=dict(self.seq),
            steps={k: dict(v) for k, v in self.steps.items()},
            by_event=dict(self.by_event),
            state={k: dict(v) for k, v in self.state.items()},
            next_seq=self.next_seq,
        )


class MemoryStore(Store):
    """``RunStore`` and ``StateStore`` in this process's memory; lost when it ends."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._t = _Tables()
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Like ``SQLiteStore.transaction``: writes inside the block happen together, and an
        exception leaving the outermost block undoes them all."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            saved = self._t.copy()
            self._depth = 1
            try:
                yield
            except BaseException:
                self._t = saved
                raise
            finally:
                self._depth = 0

    # -- RunStore -----------------------------------------------------------------------------

    def enqueue(self, run: RunRecord) -> tuple[RunRecord, bool]:
        with self._lock:
            return self._enqueue(run)

    def enqueue_many(self, runs: Sequence[RunRecord]) -> list[tuple[RunRecord, bool]]:
        with self.transaction():
            return [self._enqueue(run) for run in runs]

    def _enqueue(self, run: RunRecord) -> tuple[RunRecord, bool]:
        existing = self._t.by_event.get((run.recipe, run.event_key))
        if existing is not None:
            return self._with_steps(existing), False
        if run.id in self._t.runs:
            raise StoreError(f"a run with id {run.id} exists already")
        stored = normalize_run(run)
        self._t.runs[run.id] = dataclasses.replace(stored, steps=())
        self._t.seq[run.id] = self._t.next_seq
        self._t.next_seq += 1
        self._t.steps[run.id] = {s.index: s for s in stored.steps}
        self._t.by_event[(run.recipe, run.event_key)] = run.id
        self._t.holds[run.id] = _Hold()
        return stored, True

    def claim(
        self, run_id: str, recipe_hash: str, *, lease: Lease | None = None, **fields: object
    ) -> RunRecord | None:
        changes = check_run_changes(fields)
        for name in ("event", "row"):
            if name in changes:
                changes[name] = normalize_event(changes[name])
        with self._lock:
            run = self._exact(run_id)
            if run.status not in _UNFINISHED:
                return None
            if lease is not None and not self._holds(lease):
                return None
            started_at = run.started_at if run.started_at is not None else self._clock()
            self._t.runs[run_id] = dataclasses.replace(
                run,
                status=RunStatus.RUNNING,
                recipe_hash=recipe_hash,
                started_at=started_at,
                **changes,  # type: ignore[arg-type]
            )
            return self._with_steps(run_id)

    def unfinished(self) -> list[RunRecord]:
        with self._lock:
            ids = [i for i, r in self._t.runs.items() if r.status in _UNFINISHED]
            ids.sort(key=lambda i: self._t.seq[i])  # in the order recorded
            return [self._with_steps(i) for i in ids]

    def unfinished_after(self, recipe: str, after: str | None, limit: int) -> list[RunRecord]:
        with self._lock:
            floor = self._t.seq.get(after, -1) if after is not None else -1
            ids = [
                i
                for i, r in self._t.runs.items()
                if r.recipe == recipe and r.status in _UNFINISHED and self._t.seq[i] > floor
            ]
            ids.sort(key=lambda i: self._t.seq[i])
            return [self._t.runs[i] for i in ids[:limit]]

    def update_run(self, run_id: str, **fields: object) -> None:
        changes = check_run_changes(fields)
        for name in ("event", "row"):
            if name in changes:
                changes[name] = normalize_event(changes[name])
        with self._lock:
            run = self._exact(run_id)
            key = (
                str(changes.get("recipe", run.recipe)),
                str(changes.get("event_key", run.event_key)),
            )
            old_key = (run.recipe, run.event_key)
            if key != old_key and key in self._t.by_event:
                raise StoreError(f"cannot update run {run_id}: another run has that event")
            updated: RunRecord = dataclasses.replace(run, **changes)  # type: ignore[arg-type]
            self._t.runs[run_id] = updated
            del self._t.by_event[old_key]
            self._t.by_event[key] = run_id

    def put_step(self, step: StepRecord) -> None:
        with self._lock:
            self._exact(step.run_id)
            self._t.steps[step.run_id][step.index] = normalize_step(step)

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            if run_id in self._t.runs:
                return self._with_steps(run_id)
            found = [i for i in self._t.runs if run_id and i.startswith(run_id)]
            if len(found) > 1:
                raise StoreError(f"ambiguous run id prefix {run_id}")
            if not found:
                raise StoreError(f"no run with id {run_id}")
            return self._with_steps(found[0])

    def find_run(self, recipe: str, event_key: str) -> RunRecord | None:
        with self._lock:
            run_id = self._t.by_event.get((recipe, event_key))
            return None if run_id is None else self._with_steps(run_id)

    def list_runs_page(self, flt: RunFilter) -> RunPage:
        with self._lock:
            seq = self._t.seq
            hi = lo = None  # the console's cursors: a run gone matches nothing
            if flt.before_id is not None:
                hi = self._position(flt.before_id) or (float("-inf"), -1)
            if flt.after_id is not None:
                lo = self._position(flt.after_id) or (float("inf"), 1 << 62)
            if flt.before is not None:
                hi = flt.before if hi is None else min(hi, flt.before)
            found = [
                (r.created_at, seq[i], i)
                for i, r in self._t.runs.items()
                if _matches(r, flt)
                and (hi is None or (r.created_at, seq[i]) < hi)
                and (lo is None or (r.created_at, seq[i]) > lo)
            ]
            found.sort(reverse=True)  # newest first, then the last recorded first
            limit = max(flt.limit, 0)
            page = found[:limit]
            last = page[-1] if page and len(found) > limit else None
            return RunPage(
                [self._with_steps(i) for _, _, i in page],
                None if last is None else (last[0], last[1]),
            )

    def _position(self, run_id: str) -> tuple[float, int] | None:
        """Where the run ``run_id`` is in the order listed (``None``: no such run)."""
        run = self._t.runs.get(run_id)
        return None if run is None else (run.created_at, self._t.seq[run_id])

    def count(self, status: RunStatus | None = None) -> int:
        with self._lock:
            return sum(1 for r in self._t.runs.values() if status is None or r.status is status)

    def end_hold(
        self, recipe: str, status: RunStatus, *, now: float, error: str | None = None
    ) -> int:
        check_end_hold(status)
        with self._lock:
            runs = self._t.runs.values()
            held = [r for r in runs if r.recipe == recipe and r.status is RunStatus.HELD]
            for run in held:
                final = status is RunStatus.DISCARDED
                self._t.runs[run.id] = dataclasses.replace(
                    run,
                    status=status,
                    error=error if final else run.error,
                    finished_at=now if final else run.finished_at,
                )
            return len(held)

    def count_by_recipe(self, status: RunStatus) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for r in self._t.runs.values():
                if r.status is status:
                    counts[r.recipe] = counts.get(r.recipe, 0) + 1
            return counts

    def prune(self, *, now: float, keep_succeeded_s: float, keep_failed_s: float) -> int:
        with self._lock:
            doomed = [
                r
                for r in self._t.runs.values()
                if r.status.is_final
                and r.created_at
                < now - (keep_failed_s if r.status in _FAILED_WINDOW else keep_succeeded_s)
            ]
            for run in doomed:
                del self._t.runs[run.id], self._t.seq[run.id], self._t.steps[run.id]
                self._t.holds.pop(run.id, None)
                del self._t.by_event[(run.recipe, run.event_key)]
            return len(doomed)

    def add_audit(self, entry: AuditEntry) -> None:
        stored = dataclasses.replace(entry, detail=normalize_json(entry.detail))
        with self._lock:
            self._t.audit.append(stored)

    def audit_log(self, run_id: str | None = None, *, limit: int = 100) -> list[AuditEntry]:
        with self._lock:
            found = [e for e in self._t.audit if run_id is None or e.run_id == run_id]
        return found[-limit:] if limit > 0 else []

    def close(self) -> None:
        """Nothing to release; the data stays readable until the store is dropped."""

    # -- ClaimStore ---------------------------------------------------------------------------

    def enqueue_claimed(
        self, items: Sequence[Enqueue], owner: str, *, ttl_s: float, now: float | None = None
    ) -> list[tuple[RunRecord, bool, Lease | None]]:
        at = self._now(now)
        out: list[tuple[RunRecord, bool, Lease | None]] = []
        with self.transaction():
            for run, order_key, claim in items:
                stored, new = self._enqueue(run)
                lease = None
                if new:
                    hold = self._t.holds[run.id]
                    hold.order_key = order_key
                    if claim and stored.status is RunStatus.PENDING and self._first(run.id):
                        lease = self._take(run.id, owner, at + ttl_s)
                        stored = dataclasses.replace(stored, status=RunStatus.RUNNING)
                out.append((stored, new, lease))
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
        at = self._now(now)
        out: list[Claimed] = []
        with self._lock:
            open_keys: set[str] = set()
            for run_id, run in self._t.runs.items():  # in the order recorded
                if len(out) >= limit:
                    break
                if run.status not in _UNFINISHED:
                    continue
                hold = self._t.holds[run_id]
                key = hold.order_key
                blocked = key is not None and key in open_keys
                if key is not None:
                    open_keys.add(key)
                if (
                    run.status is not RunStatus.PENDING
                    or blocked
                    or (recipe is not None and run.recipe != recipe)
                    or (hold.available_at or 0.0) > at
                ):
                    continue
                lease = self._take(run_id, owner, at + ttl_s)
                out.append(Claimed(self._t.runs[run_id], lease))
        return out

    def claim_run(
        self, run_id: str, owner: str, *, ttl_s: float, now: float | None = None
    ) -> Claimed | None:
        at = self._now(now)
        with self._lock:
            run = self._t.runs.get(run_id)
            if run is None:
                return None
            hold = self._t.holds[run_id]
            mine = run.status is RunStatus.RUNNING and hold.owner == owner
            if run.status is not RunStatus.PENDING and not mine:
                return None
            return Claimed(self._t.runs[run_id], self._take(run_id, owner, at + ttl_s))

    def ready_recipes(self, *, now: float | None = None) -> list[str]:
        with self._lock:
            found = {r.recipe for r in self._t.runs.values() if r.status is RunStatus.PENDING}
        return sorted(found)

    def mark_sending(self, step: StepRecord, lease: Lease, *, now: float | None = None) -> bool:
        at = self._now(now)
        with self._lock:
            if not self._holds(lease) or (self._t.holds[lease.run_id].expires_at or 0.0) <= at:
                return False
            prior = self._t.steps[step.run_id].get(step.index)
            if prior is not None and prior.status in _FINAL_STEPS:
                return False
            self._t.steps[step.run_id][step.index] = normalize_step(step)
            return True

    def holds(self, lease: Lease) -> bool:
        with self._lock:
            return self._holds(lease)

    def renew(self, owner: str, *, ttl_s: float, now: float | None = None) -> dict[str, int]:
        at = self._now(now)
        kept: dict[str, int] = {}
        with self._lock:
            for run_id, hold in self._t.holds.items():
                if (
                    hold.owner == owner
                    and self._t.runs[run_id].status is RunStatus.RUNNING
                    and (hold.expires_at or 0.0) > at
                ):
                    hold.expires_at = at + ttl_s
                    kept[run_id] = hold.token
        return kept

    def rescue_expired(self, *, grace_s: float = 0.0, now: float | None = None) -> dict[str, int]:
        at = self._now(now)
        rescued: dict[str, int] = {}
        with self._lock:
            for run_id, hold in self._t.holds.items():
                run = self._t.runs[run_id]
                if (
                    run.status is RunStatus.RUNNING
                    and hold.expires_at is not None
                    and hold.expires_at < at - grace_s
                ):
                    rescued[run_id] = hold.token
                    self._give_back(run_id, at)
        return rescued

    def rescue_all(self) -> int:
        with self._lock:
            running = [i for i, r in self._t.runs.items() if r.status is RunStatus.RUNNING]
            for run_id in running:
                self._give_back(run_id, None)
            return len(running)

    def release(self, lease: Lease, *, available_at: float | None = None) -> bool:
        with self._lock:
            if not self._holds(lease):
                return False
            self._give_back(lease.run_id, self._now(available_at))
            return True

    def release_idle(self, owner: str, *, now: float | None = None) -> int:
        at = self._now(now)
        released = 0
        with self._lock:
            for run_id, hold in self._t.holds.items():
                if hold.owner != owner or self._t.runs[run_id].status is not RunStatus.RUNNING:
                    continue
                steps = self._t.steps[run_id].values()
                if any(s.status is StepStatus.SENDING for s in steps):
                    continue
                self._give_back(run_id, at)
                released += 1
        return released

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _holds(self, lease: Lease) -> bool:
        run = self._t.runs.get(lease.run_id)
        hold = self._t.holds.get(lease.run_id)
        return (
            run is not None
            and hold is not None
            and run.status is RunStatus.RUNNING
            and hold.owner == lease.owner
            and hold.token == lease.token
        )

    def _first(self, run_id: str) -> bool:
        """Whether ``run_id`` is the earliest open run of its order key."""
        key = self._t.holds[run_id].order_key
        if key is None:
            return True
        for other, run in self._t.runs.items():
            if other == run_id:
                return True
            if run.status in _UNFINISHED and self._t.holds[other].order_key == key:
                return False
        return True

    def _take(self, run_id: str, owner: str, expires_at: float) -> Lease:
        hold = self._t.holds[run_id]
        hold.owner, hold.token, hold.expires_at = owner, hold.token + 1, expires_at
        run = self._t.runs[run_id]
        if run.status is not RunStatus.RUNNING:
            self._t.runs[run_id] = dataclasses.replace(run, status=RunStatus.RUNNING)
        return Lease(run_id, owner, hold.token)

    def _give_back(self, run_id: str, available_at: float | None) -> None:
        hold = self._t.holds[run_id]
        hold.owner, hold.expires_at, hold.available_at = None, None, available_at
        run = self._t.runs[run_id]
        self._t.runs[run_id] = dataclasses.replace(run, status=RunStatus.PENDING)

    # -- StateStore ---------------------------------------------------------------------------

    def get_state(self, scope: str, key: str) -> str | None:
        with self._lock:
            return self._t.state.get(scope, {}).get(key)

    def set_state(self, scope: str, items: Iterable[tuple[str, str]]) -> None:
        values = dict(items)  # read them all first: a failing iterable changes nothing
        with self._lock:
            self._t.state.setdefault(scope, {}).update(values)

    def get_states(self, scope: str, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            values = self._t.state.get(scope, {})
            return {key: values[key] for key in keys if key in values}

    def all_state(self, scope: str) -> dict[str, str]:
        with self._lock:
            return dict(sorted(self._t.state.get(scope, {}).items()))

    # -- helpers ------------------------------------------------------------------------------

    def _exact(self, run_id: str) -> RunRecord:
        run = self._t.runs.get(run_id)
        if run is None:
            raise StoreError(f"no run with id {run_id}")
        return run

    def _with_steps(self, run_id: str) -> RunRecord:
        steps = self._t.steps[run_id]
        return dataclasses.replace(
            self._t.runs[run_id], steps=tuple(steps[i] for i in sorted(steps))
        )


def _matches(run: RunRecord, flt: RunFilter) -> bool:
    return (
        (flt.recipe is None or run.recipe == flt.recipe)
        and (flt.status is None or run.status is flt.status)
        and (flt.since is None or run.created_at >= flt.since)
        and (flt.until is None or run.created_at < flt.until)
        and not (flt.hide_skipped and run.status is RunStatus.SKIPPED)
        and (flt.key is None or key_matches(run, flt.key))
    )
