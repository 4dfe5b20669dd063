"""The records the engine keeps: runs, their steps, and the filter to query them.

Records are frozen values; a store returns new ones rather than handing out mutable state.
JSON-shaped fields (``row``, ``request``, ``response_body``) are already redacted when they reach
a record: no secret value is ever stored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AuditEntry",
    "PageCursor",
    "RunFilter",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "StepRecord",
    "StepStatus",
    "TriggerKind",
    "key_matches",
    "row_key",
]


class TriggerKind(enum.Enum):
    """What produced the event a run is for."""

    #: A new or changed row in a CSV / JSONL table.
    TABLE = "table"
    #: An HTTP POST to a recipe's webhook path.
    WEBHOOK = "webhook"
    #: A schedule's fire time (one run per table row when the schedule has a table).
    SCHEDULE = "schedule"
    #: ``automations exec``: a person ran one row by hand.
    MANUAL = "manual"


class RunStatus(enum.Enum):
    """Where a run is in its life."""

    #: Recorded (the durable inbox) and waiting for a worker.
    PENDING = "pending"
    #: A worker is executing it; after a crash, the runner resumes it.
    RUNNING = "running"
    #: Every step that was due succeeded.
    SUCCEEDED = "succeeded"
    #: A step failed; the failure and the provider's message are in the step.
    FAILED = "failed"
    #: The recipe's ``only_run_if`` was false: nothing was sent.
    SKIPPED = "skipped"
    #: A request that is not safe to repeat (a Quo SMS or contact) may or may not have been
    #: processed (a 5xx, a timeout, a crash while sending): a person checks, then records what
    #: happened with ``resolve``; it is never resent automatically.
    UNKNOWN = "unknown"
    #: Recorded but not executed: one scan of a table produced more runs than the recipe's
    #: ``flood_limit``. A person releases it (``automations approve``: back to ``pending``) or
    #: ends it (``automations discard``: ``discarded``). Never resumed or executed by itself.
    HELD = "held"
    #: A held run a person discarded: never sent, kept in the audit.
    DISCARDED = "discarded"

    @property
    def is_final(self) -> bool:
        """Nothing more happens to the run by itself (``held`` waits for a person, so it is not
        final either)."""
        return self not in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.HELD)


class StepStatus(enum.Enum):
    """The outcome of one action of a run."""

    #: Not attempted yet.
    PENDING = "pending"
    #: The request is about to leave or has left, and no answer is recorded yet. Written before
    #: sending, so a crash mid-request leaves this mark: the step is then ``unknown`` (SMS) or
    #: resent with the same idempotency key (Loops).
    SENDING = "sending"
    #: The provider accepted the request (or, for Loops, had already accepted it: 409).
    SUCCEEDED = "succeeded"
    #: The provider refused the request, or it could not be rendered; see ``error``.
    FAILED = "failed"
    #: The action's own ``only_run_if`` was false.
    SKIPPED = "skipped"
    #: The request may have been delivered; never resent automatically. ``resolve`` turns it into
    #: ``succeeded`` (it was sent) or ``failed`` (it was not: a replay sends it).
    UNKNOWN = "unknown"
    #: Dry run: rendered and recorded, not sent.
    DRY_RUN = "dry_run"


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One action of one run: what was sent, what came back."""

    run_id: str
    index: int
    step_id: str
    action: str
    status: StepStatus = StepStatus.PENDING
    #: ``{"method", "url", "headers", "body"}``; secret headers and values masked.
    request: dict[str, Any] | None = None
    http_status: int | None = None
    #: The response body, parsed JSON when it was JSON, truncated to a bounded size.
    response_body: Any = None
    attempts: int = 0
    duration_ms: float | None = None
    error: str | None = None
    error_code: str | None = None
    idempotency_key: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    #: How a person resolved an ``unknown`` outcome: ``"sent"`` (the step then reads
    #: ``succeeded``, never sent again) or ``"not-sent"`` (``failed``: a replay sends it). Who and
    #: when are in the audit (``AuditEntry``).
    resolution: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One execution of one recipe for one event.

    ``event`` is the trigger's payload (the table row, the webhook body, the fire time); ``row``
    is what the recipe saw after ``columns:`` (``None`` when the recipe has no ``columns:``: the
    row is then the event itself). Both are redacted. ``event_key`` de-duplicates:
    a store holds at most one run per ``(recipe, event_key)``.
    """

    id: str
    recipe: str
    trigger: TriggerKind
    event_key: str
    event: Any
    created_at: float
    status: RunStatus = RunStatus.PENDING
    recipe_hash: str | None = None
    row: Any = None
    condition: bool | None = None
    dry_run: bool = False
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    #: The run this one replays, if any.
    replay_of: str | None = None
    #: The replay of this run, if any: a run is replayed at most once (a dry-run replay does not
    #: count); what failed again is replayed from the newest run of the chain.
    replayed_as: str | None = None
    steps: tuple[StepRecord, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One decision a person took (replay, resolve, ...): who, when, what, on which run.

    ``detail`` is a small JSON object (``{"step": "sms", "outcome": "sent"}``); it never holds
    a secret. Entries are kept when their run is pruned.
    """

    at: float
    #: Who: the operating-system user, or what ``--by`` said.
    actor: str
    #: What: ``"replay"``, ``"resolve"``...
    action: str
    run_id: str | None = None
    step_index: int | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs ``RunStore.list_runs`` returns, newest first: by ``created_at``, then by the
    order recorded (every filter, alone or combined, is answered by an index of the stores)."""

    recipe: str | None = None
    status: RunStatus | None = None
    #: Runs created at or after this time (unix seconds).
    since: float | None = None
    limit: int = 50
    #: The runs of one event or row: see ``key_matches``.
    key: str | None = None
    #: Only runs listed after (``before_id``: older) or before (``after_id``: newer) the run
    #: with this id, in the order listed: the console's keyset cursors (a cursor whose run is
    #: gone matches nothing).
    before_id: str | None = None
    after_id: str | None = None
    #: Only runs created before this time (unix s); ``since`` is the other end of the range.
    until: float | None = None
    #: Leave out runs ``skipped`` by their condition (the console hides them by default).
    hide_skipped: bool = False
    #: A keyset cursor: only runs after this one in the order listed (older), as
    #: ``RunPage.next`` gave it for the page before.
    before: PageCursor | None = None


#: Where a page of runs ended: the last run's ``(created_at, position recorded)``. Opaque to
#: callers but stable: a run recorded meanwhile never shifts the pages after it.
PageCursor = tuple[float, int]


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of ``RunStore.list_runs_page``: the runs, and the cursor of the next page
    (``RunFilter(before=next)``), ``None`` when this page is the last."""

    runs: list[RunRecord]
    next: PageCursor | None


#: A schedule's fire key (``2024-03-10T07:00:00Z``) and the ``:`` before a table row's key.
_FIRE_PREFIX = 21
_HEX = frozenset("0123456789abcdef")


def row_key(event_key: str) -> str:
    """``event_key`` without a table row version's ``@<16 hex digits>`` suffix: the key an
    operator knows the row by."""
    head, at, digest = event_key.rpartition("@")
    if at and len(digest) == 16 and set(digest) <= _HEX:
        return head
    return event_key


def key_matches(run: RunRecord, key: str) -> bool:
    """Whether ``run`` is one of the runs of ``key`` (an e-mail address, a phone number, an
    event id: whatever identifies the row or the event): its event key is ``key``, or a table
    row's later version of it (``key@<16 hex digits>``), or a scheduled run over that row
    (``<fire time>:key``)."""
    ek = run.event_key
    if ek == key or (ek.startswith(key + "@") and row_key(ek) == key):
        return True
    return run.trigger is TriggerKind.SCHEDULE and ek[_FIRE_PREFIX:] == key
