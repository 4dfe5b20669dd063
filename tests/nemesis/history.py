"""The history of a multi-node run, and the checker of what must hold whatever the faults.

A history has four parts, recorded by the harness and checked only at the end (the checker is
a pure function, so it is tested on synthetic histories, including ones that must fail):

- ``events``: what the clients produced: each webhook posted and each row appended, by the
  ``(recipe, event_key)`` of the run it must (``required``: answered 2xx, or appended) or may
  (posted, never answered) have;
- ``requests``: every request a fake provider received, when, with which API key and outcome,
  and the event it belongs to (``ref``, read from the body by the harness);
- ``runs``: every run and step in the database once the nodes went quiet;
- ``faults``: what the nemesis did and when (for the report; nothing is checked against it).

``check(history)`` returns the violations as sentences (an empty list: all promises held):

1. each event has exactly one run, and no run exists for an event nobody produced;
2. no SMS (and no other request that must not be repeated: a Quo contact) was received twice;
3. every SMS the fake did not receive belongs to a run that is ``unknown`` or ``failed``, and
   every run that ``succeeded`` had its SMS received;
4. every Loops event sent more than once carried the same ``Idempotency-Key`` each time, and
   was accepted at most once (a succeeded run's exactly once);
5. at each fake, no sliding second saw more than ``limit`` requests of one API key;
6. each schedule fire time ran once;
7. after the quiet period, no run is left ``pending`` or ``running``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "OPEN",
    "Event",
    "Fault",
    "History",
    "Request",
    "Run",
    "Step",
    "check",
    "max_in_sliding_window",
]

#: A run of one of these did not finish; after the quiet period none may be left.
OPEN = frozenset({"pending", "running"})
#: What a run whose SMS never reached the provider may end as.
NOT_SENT_OK = frozenset({"unknown", "failed"})


@dataclass(frozen=True, slots=True)
class Event:
    """An event a client produced. ``required``: it must have exactly one run (a webhook
    answered 2xx, a row appended); otherwise it may have one (a webhook whose answer was lost)."""

    recipe: str
    event_key: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class Request:
    """One request as a fake provider received it (``at``: its clock, ``time.time()``)."""

    fake: str
    at: float
    method: str
    path: str
    #: The API key it was made with (the rate limit's bucket); ``None``: not authenticated.
    key: str | None
    #: The status answered, or the name of the exception the fake raised (processed, answer lost).
    outcome: int | str
    #: ``recipe/event_key`` of the event it was made for (the harness reads it from the body).
    ref: str | None = None
    idempotency_key: str | None = None

    @property
    def received(self) -> bool:
        """The provider acted on it: answered 2xx, or processed and then lost its answer."""
        if isinstance(self.outcome, str):
            return True
        return 200 <= self.outcome < 300

    @property
    def kind(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class Step:
    idx: int
    step_id: str
    action: str
    status: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    recipe: str
    trigger: str
    event_key: str
    status: str
    steps: tuple[Step, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.recipe}/{self.event_key}"


@dataclass(frozen=True, slots=True)
class Fault:
    at: float
    kind: str
    target: str
    detail: str = ""


@dataclass
class History:
    """Everything recorded. ``sms_recipes`` name the recipes that send one SMS per run,
    ``schedule_recipes`` those fired by a schedule; ``never_twice`` lists the request kinds
    (``POST /v1/messages``) a provider must never receive twice for one event."""

    seed: int
    events: list[Event] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    sms_recipes: frozenset[str] = frozenset()
    schedule_recipes: frozenset[str] = frozenset()
    sms_kind: str = "POST /v1/messages"
    never_twice: frozenset[str] = frozenset({"POST /v1/messages", "POST /v1/contacts"})
    idempotent_kind: str = "POST /v1/events/send"
    limit: int = 10
    per_s: float = 1.0

    def dump(self, path: Path) -> None:
        """Write the history as JSON (kept with a failing test's output to study it)."""
        data = asdict(self)
        for name in ("sms_recipes", "schedule_recipes", "never_twice"):
            data[name] = sorted(data[name])
        path.write_text(json.dumps(data, indent=1, default=str), "utf-8")

    def summary(self) -> str:
        statuses = Counter(r.status for r in self.runs)
        faults = Counter(f.kind for f in self.faults)
        return (
            f"seed {self.seed}: {len(self.events)} events, {len(self.runs)} runs "
            f"{dict(sorted(statuses.items()))}, {len(self.requests)} requests at the fakes, "
            f"faults {dict(sorted(faults.items()))}"
        )


def check(history: History) -> list[str]:
    """Every violation of the promises in the module docstring, as sentences."""
    return [
        *_one_run_per_event(history),
        *_never_twice(history),
        *_unsent_sms(history),
        *_idempotent_resends(history),
        *_pacing(history),
        *_schedules(history),
        *_quiet(history),
    ]


def _one_run_per_event(h: History) -> Iterable[str]:
    runs = Counter((r.recipe, r.event_key) for r in h.runs)
    for (recipe, key), n in sorted(runs.items()):
        if n > 1:
            yield f"event {recipe}/{key} has {n} runs"
    produced = {(e.recipe, e.event_key) for e in h.events}
    for e in sorted({e for e in h.events if e.required}, key=lambda e: (e.recipe, e.event_key)):
        if runs[e.recipe, e.event_key] == 0:
            yield f"event {e.recipe}/{e.event_key} was accepted but has no run"
    for recipe, key in sorted(runs):
        if recipe not in h.schedule_recipes and (recipe, key) not in produced:
            yield f"run of {recipe}/{key}: no client produced that event"


def _never_twice(h: History) -> Iterable[str]:
    seen = Counter(
        (r.fake, r.kind, r.ref) for r in h.requests if r.kind in h.never_twice and r.received
    )
    for (fake, kind, ref), n in sorted(seen.items(), key=lambda kv: str(kv[0])):
        if n > 1:
            yield f"{fake} received {kind} for {ref} {n} times"


def _unsent_sms(h: History) -> Iterable[str]:
    received = Counter(r.ref for r in h.requests if r.kind == h.sms_kind and r.received)
    for run in sorted(h.runs, key=lambda r: r.ref):
        if run.recipe not in h.sms_recipes or run.status in OPEN:
            continue  # an open run is reported by the quiet check
        if received[run.ref] == 0 and run.status not in NOT_SENT_OK:
            yield f"the SMS of {run.ref} never reached the provider, yet the run is {run.status}"
        if run.status == "succeeded" and received[run.ref] != 1:
            yield (
                f"{run.ref} succeeded, but the provider received its SMS {received[run.ref]} times"
            )


def _idempotent_resends(h: History) -> Iterable[str]:
    keys: dict[str | None, set[str | None]] = defaultdict(set)
    accepted: Counter[str | None] = Counter()
    for r in h.requests:
        if r.kind == h.idempotent_kind:
            keys[r.ref].add(r.idempotency_key)
            accepted[r.ref] += r.received
    for ref, seen in sorted(keys.items(), key=lambda kv: str(kv[0])):
        if None in seen:
            yield f"{h.idempotent_kind} for {ref} was sent without an Idempotency-Key"
        if len(seen) > 1:
            shown = sorted(str(k) for k in seen)
            yield f"{h.idempotent_kind} for {ref} was resent under {len(seen)} keys: {shown}"
        if accepted[ref] > 1:
            yield f"{h.idempotent_kind} for {ref} was accepted {accepted[ref]} times"
    idempotent = {r.ref for r in h.runs if any(s.idempotency_key for s in r.steps)}
    for run in sorted(h.runs, key=lambda r: r.ref):
        if run.status == "succeeded" and run.ref in idempotent and accepted[run.ref] != 1:
            yield (
                f"{run.ref} succeeded, but {h.idempotent_kind} was accepted "
                f"{accepted[run.ref]} times"
            )


def max_in_sliding_window(times: Iterable[float], per_s: float = 1.0) -> tuple[int, float]:
    """The most ``times`` in any window ``(t - per_s, t]``, and the ``t`` it ends at."""
    ordered = sorted(times)
    best, at, start = 0, 0.0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - per_s:
            start += 1
        if end - start + 1 > best:
            best, at = end - start + 1, t
    return best, at


def _pacing(h: History) -> Iterable[str]:
    by_key: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in h.requests:
        if r.key is not None:  # an unauthenticated request is not counted against a key
            by_key[r.fake, r.key].append(r.at)
    for (fake, _key), times in sorted(by_key.items()):  # a key is a secret: not shown
        most, at = max_in_sliding_window(times, h.per_s)
        if most > h.limit:
            yield (
                f"{fake} saw {most} requests of one key in the {h.per_s:g} s ending at "
                f"{at:.3f} (limit {h.limit})"
            )
    for r in h.requests:
        if r.outcome == 429:
            yield f"{r.fake} answered 429 at {r.at:.3f} ({r.kind} for {r.ref})"


def _schedules(h: History) -> Iterable[str]:
    for recipe in sorted(h.schedule_recipes):
        fired = Counter(r.event_key for r in h.runs if r.recipe == recipe)
        if not fired:
            yield f"schedule {recipe} never fired"
        for key, n in sorted(fired.items()):
            if n > 1:
                yield f"schedule {recipe} ran fire time {key} {n} times"


def _quiet(h: History) -> Iterable[str]:
    for run in sorted(h.runs, key=lambda r: r.ref):
        if run.status in OPEN:
            yield f"{run.ref} ({run.id}) is still {run.status} after the quiet period"


def load(path: Path) -> History:
    """A history written by ``History.dump`` (to re-check a saved one)."""
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    runs = [Run(**{**r, "steps": tuple(Step(**s) for s in r["steps"])}) for r in data.pop("runs")]
    return History(
        **{
            **data,
            "events": [Event(**e) for e in data["events"]],
            "requests": [Request(**r) for r in data["requests"]],
            "faults": [Fault(**f) for f in data["faults"]],
            "runs": runs,
            "sms_recipes": frozenset(data["sms_recipes"]),
            "schedule_recipes": frozenset(data["schedule_recipes"]),
            "never_twice": frozenset(data["never_twice"]),
        }
    )
