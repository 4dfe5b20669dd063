"""The runs page's filters: read from the query string, turned into store queries.

Every filter is answered by the store's indexes, never by reading the history: a page is the
newest ``PAGE`` runs matching the filter recorded before a cursor run (keyset pagination: the
next page starts after the last run shown, so page 2,000 costs what page 1 costs).

A search for a key finds the runs of an event or of a row (``records.key_matches``). People
type a phone number as they like, so a phone-like search is tried in its usual forms (E.164,
national digits, ``(555) 555-0100``, ...), an e-mail address as typed and in lower case: each
form is one indexed lookup.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from automations.errors import RenderError
from automations.phone import to_e164
from automations.records import RunFilter, RunStatus

__all__ = ["PAGE", "RunsQuery", "key_variants", "parse_time"]

#: Runs per page.
PAGE = 50
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str, *, now: float | None = None) -> float:
    """``2026-11-01``, an ISO time (``2026-11-01T07:30``, UTC unless it says otherwise), or a
    duration back from now (``90m``, ``24h``, ``7d``); ``ValueError`` with the forms otherwise."""
    value = value.strip()
    if value[:-1].isdigit() and value[-1:] in _UNITS:
        return (time.time() if now is None else now) - int(value[:-1]) * _UNITS[value[-1]]
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a time: use a date (2026-11-01), an ISO time "
            "(2026-11-01T07:30, UTC), or a duration back from now (24h, 7d)"
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def key_variants(term: str) -> list[str]:
    """The event keys a search for ``term`` looks up, ``term`` itself first."""
    term = term.strip()
    out = [term]
    if "@" in term:
        out.append(term.lower())
    digits = re.sub(r"\D", "", term)
    if 7 <= len(digits) <= 15 and re.fullmatch(r"[\d\s()+.\-]+", term):
        try:
            e164 = to_e164(term, "US")
        except RenderError:
            e164 = "+" + digits
        out += [e164, digits, e164[1:]]
        if e164.startswith("+1") and len(e164) == 12:
            n = e164[2:]
            a, b, c = n[:3], n[3:6], n[6:]
            out += [
                n,
                f"({a}) {b}-{c}",
                f"{a}-{b}-{c}",
                f"{a}.{b}.{c}",
                f"{a} {b} {c}",
                f"+1 {a}-{b}-{c}",
                f"+1 ({a}) {b}-{c}",
                f"+1 {a} {b} {c}",
                f"1{n}",
            ]
    return list(dict.fromkeys(v for v in out if v))


@dataclass(frozen=True, slots=True)
class RunsQuery:
    """What the runs page shows: its filters and its cursor, as the query string has them."""

    recipe: str | None = None
    status: RunStatus | None = None
    since: str | None = None
    until: str | None = None
    key: str | None = None
    #: Show runs skipped by their condition (hidden by default).
    skipped: bool = False
    #: The cursor: runs recorded before this run id.
    before: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> tuple[RunsQuery, list[str]]:
        """The query, and what was wrong in the parameters (each left out, with why)."""
        problems: list[str] = []

        def text(name: str) -> str | None:
            value = params.get(name, "").strip()
            return value[:200] or None

        status: RunStatus | None = None
        raw = text("status")
        if raw is not None:
            try:
                status = RunStatus(raw)
            except ValueError:
                known = ", ".join(s.value for s in RunStatus)
                problems.append(f"status {raw!r} is not one of: {known}")
        since, until = text("since"), text("until")
        for name, value in (("since", since), ("until", until)):
            if value is not None:
                try:
                    parse_time(value)
                except ValueError as exc:
                    problems.append(f"{name}: {exc}")
        since = since if since is None or not _bad(since) else None
        until = until if until is None or not _bad(until) else None
        return (
            cls(
                recipe=text("recipe"),
                status=status,
                since=since,
                until=until,
                key=text("key"),
                skipped=params.get("skipped") == "1",
                before=text("before"),
            ),
            problems,
        )

    @property
    def hides_skipped(self) -> bool:
        return not self.skipped and self.status is None

    def filters(self, limit: int, *, now: float | None = None) -> list[RunFilter]:
        """The store queries: one, or one per form of the searched key."""
        base = RunFilter(
            recipe=self.recipe,
            status=self.status,
            since=None if self.since is None else parse_time(self.since, now=now),
            until=None if self.until is None else parse_time(self.until, now=now),
            limit=limit,
            before_id=self.before,
            hide_skipped=self.hides_skipped,
        )
        if self.key is None:
            return [base]
        return [replace(base, key=k) for k in key_variants(self.key)]

    def params(self, **changes: object) -> str:
        """The query string of this query with ``changes`` (``None`` removes a parameter)."""
        values: dict[str, str | None] = {
            "recipe": self.recipe,
            "status": None if self.status is None else self.status.value,
            "since": self.since,
            "until": self.until,
            "key": self.key,
            "skipped": "1" if self.skipped else None,
            "before": self.before,
        }
        values.update({k: None if v is None else str(v) for k, v in changes.items()})
        return urlencode({k: v for k, v in values.items() if v is not None})

    def pinned(self, now: float) -> RunsQuery:
        """This query with a time range given as a duration back (``24h``) written as the
        times it means now: a confirmation acts on the runs its preview counted."""

        def pin(value: str | None) -> str | None:
            if value is None or not (value[:-1].isdigit() and value[-1:] in _UNITS):
                return value
            when = datetime.fromtimestamp(parse_time(value, now=now), UTC)
            return when.isoformat(timespec="seconds")

        return replace(self, since=pin(self.since), until=pin(self.until))

    def url(self, path: str, **changes: object) -> str:
        """``path`` with this query's string (``params``), if any."""
        qs = self.params(**changes)
        return f"{path}?{qs}" if qs else path

    @property
    def filtered(self) -> bool:
        """Whether anything narrows the list (beyond hiding skipped runs)."""
        return any(
            v is not None for v in (self.recipe, self.status, self.since, self.until, self.key)
        )


def _bad(value: str) -> bool:
    try:
        parse_time(value)
    except ValueError:
        return True
    return False
