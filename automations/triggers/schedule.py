"""Schedule triggers: when a ``cron`` or ``every`` schedule fires, and which fire times are due.

Cron expressions have 5 fields (minute hour day-of-month month day-of-week; day-of-week 0 and 7
are both Sunday) and are evaluated by ``cronsim`` in the trigger's IANA ``timezone``. cronsim's
extensions ``L``, ``LW`` and ``#`` are accepted; ``@daily``-style macros are not (cronsim has
none; ``validate_cron`` names the 5-field equivalent), nor are 6-field (seconds) expressions.

Daylight saving time, for jobs at a specific minute and hour (cronsim follows Debian cron):

- A time skipped by spring-forward (02:30 in America/New_York on the second Sunday of March)
  fires once, at the first valid minute after the gap (03:00 local), not never.
- A time repeated by fall-back (01:30 on the first Sunday of November) fires exactly once, at its
  first occurrence (01:30 EDT).

Jobs with ``*`` in the minute or hour field run in real time: an hourly job fires at 01:00 EDT
and again at 01:00 EST on fall-back day, and has no 02:00 on spring-forward day.

``every`` intervals are aligned to the Unix epoch (UTC): ``every: 1h`` fires on the hour and
``every: 1d`` at 00:00 UTC, whenever the runner started, so restarts do not drift. (Use cron for
"daily at 9:00 local".)

All returned datetimes are aware and in UTC; inputs may be in any zone but must be aware.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from automations.model import Missed, ScheduleTrigger

__all__ = ["ScheduleClock", "fire_key", "parse_every", "validate_cron"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MIN_GRACE = timedelta(seconds=2)
_MAX_GRACE = timedelta(seconds=60)
_CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EVERY = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_EVERY_UNITS = (86400, 3600, 60, 1)


class ScheduleClock:
    """Fire times of one ``ScheduleTrigger`` (``cron`` or ``every``, exactly one of them)."""

    def __init__(self, trigger: ScheduleTrigger) -> None:
        if (trigger.cron is None) == (trigger.every is None):
            raise ValueError("a schedule needs exactly one of cron and every")
        self.trigger = trigger
        self._zone = _zone(trigger.timezone)
        self._interval_us = 0
        if trigger.cron is not None:
            error = validate_cron(trigger.cron, trigger.timezone)
            if error is not None:
                raise ValueError(error)
        else:
            assert trigger.every is not None
            self._interval_us = trigger.every // timedelta(microseconds=1)
            if trigger.every < _SECOND:
                raise ValueError("an every interval must be at least 1 second")

    def next_after(self, t: datetime) -> datetime:
        """The first fire time strictly after ``t``. ``ValueError`` if there is none within
        cronsim's 50-year horizon (a validated expression always has one)."""
        t = _utc(t)
        if self._interval_us:
            elapsed = (t - _EPOCH) // timedelta(microseconds=1)
            return _EPOCH + timedelta(
                microseconds=(elapsed // self._interval_us + 1) * self._interval_us
            )
        for fire in self._cron_after(t):
            return fire
        raise ValueError(f"cron {self.trigger.cron!r} has no fire time after {t.isoformat()}")

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """The last fire time at or before ``t`` (``None`` if there was none in 50 years)."""
        t = _utc(t)
        if self._interval_us:
            elapsed = (t - _EPOCH) // timedelta(microseconds=1)
            return _EPOCH + timedelta(microseconds=elapsed // self._interval_us * self._interval_us)
        assert self.trigger.cron is not None
        # cronsim's reverse iteration finds a nearby candidate cheaply; forward iteration from
        # a little before it then decides, so the result follows the forward (DST) semantics.
        ceiling = t.replace(microsecond=0) + _SECOND
        try:
            candidate = next(CronSim(self.trigger.cron, ceiling.astimezone(self._zone), True))
        except StopIteration:
            return None
        cursor = candidate.astimezone(UTC) - timedelta(hours=1, seconds=1)
        latest = None
        for fire in self._cron_after(cursor):
            if fire > t:
                break
            latest = fire
        return latest

    def _cron_after(self, t: datetime) -> Iterator[datetime]:
        """Cron fire times strictly after ``t`` (UTC), in order."""
        assert self.trigger.cron is not None
        for candidate in CronSim(self.trigger.cron, t.astimezone(self._zone)):
            fire = candidate.astimezone(UTC)
            # Wall-clock iteration can land before ``t`` when ``t`` is in a repeated hour (fall
            # back); such a time has already fired at its first occurrence.
            if fire > t:
                yield fire

    def grace(self, fire: datetime) -> timedelta:
        """How late a fire time may still run under ``missed: skip``: a tenth of the gap to the
        next fire time, at least 2 s and at most 60 s (a loaded machine or a quick restart
        still runs a daily job; an every-30s job is not run 20 s late)."""
        period = self.next_after(fire) - _utc(fire)
        return max(_MIN_GRACE, min(_MAX_GRACE, period / 10))

    def due(
        self, last_fired: datetime | None, now: datetime, missed: Missed | None = None
    ) -> list[datetime]:
        """The fire times to run at ``now``, oldest first, given the last one handled.

        Fire times after ``last_fired`` and at or before ``now`` have passed. Each of them still
        within ``grace()`` of ``now`` runs (a loop that wakes a little late, or after a stall of
        a few seconds, still runs every fire time it passed). Older ones were missed: with
        ``skip`` (``missed=None`` means the trigger's own policy) they are dropped; with
        ``run_once`` the latest of them runs, however late and however many were missed, unless
        a fire time on time runs anyway. On first activation (``last_fired`` is ``None``)
        nothing counts as missed: only fire times within the grace window run.
        """
        policy = self.trigger.missed if missed is None else missed
        now = _utc(now)
        last = None if last_fired is None else _utc(last_fired)
        on_time: list[datetime] = []
        # grace() is at most 60 s: only fire times in the last minute can be on time
        cursor = now - _MAX_GRACE - _SECOND
        if last is not None and last > cursor:
            cursor = last
        fire = self.next_after(cursor)
        while fire <= now:
            if now - fire <= self.grace(fire):
                on_time.append(fire)
            fire = self.next_after(fire)
        if on_time or last is None or policy is Missed.SKIP:
            return on_time
        gone = self.missed(last, now)
        return [] if gone is None else [gone[1]]

    def missed(self, last_fired: datetime, now: datetime) -> tuple[datetime, datetime] | None:
        """The first and the latest fire time after ``last_fired`` that ``now`` is too late for
        (past their grace), or ``None`` when there is none."""
        now, last = _utc(now), _utc(last_fired)
        first = self.next_after(last)
        if first > now or now - first <= self.grace(first):
            return None
        latest = self.latest_at_or_before(now)
        while latest is not None and latest > first and now - latest <= self.grace(latest):
            latest = self.latest_at_or_before(latest - timedelta(microseconds=1))
        return first, latest if latest is not None and latest > first else first


def fire_key(dt: datetime) -> str:
    """A fire time's stable dedupe key: UTC ISO 8601 to the second (``2024-03-10T07:00:00Z``)."""
    return _utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_every(text: str) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``1d`` or combinations largest unit first (``1h30m``, ``90s``).
    ``ValueError`` with an example for anything else, or for zero."""
    compact = text.strip()
    match = _EVERY.fullmatch(compact)
    if not compact or match is None:
        raise ValueError(
            f"invalid interval {text!r}: write a number and a unit (s, m, h, d), "
            "largest unit first, e.g. '30s', '5m', '1h30m', '1d'"
        )
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _EVERY_UNITS, strict=True) if n)
    if seconds == 0:
        raise ValueError(f"invalid interval {text!r}: it must be at least 1s")
    return timedelta(seconds=seconds)


def validate_cron(expr: str, tz: str) -> str | None:
    """An error message for a cron expression / time zone the schedule cannot use, else None."""
    try:
        zone = _zone(tz)
    except ValueError as exc:
        return str(exc)
    fields = expr.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        macro = fields[0].lower()
        if macro in _MACROS:
            return f"{fields[0]} is not supported; write {_MACROS[macro]!r} instead"
        return f"{fields[0]} is not supported: write 5 fields (minute hour day month weekday)"
    if len(fields) != 5:
        extra = "; seconds are not supported" if len(fields) == 6 else ""
        return (
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"this one has {len(fields)}{extra}"
        )
    try:
        next(CronSim(expr, datetime.now(zone)))
    except CronSimError as exc:
        for name, value in zip(_CRON_FIELDS, fields, strict=True):
            if str(exc) == f"Bad {name}":
                return f"invalid {name} field {value!r}"
        return f"invalid cron expression: {exc}"
    except StopIteration:
        return f"cron {expr!r} never fires"
    return None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'America/New_York'"
        ) from None


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("schedule times must be timezone-aware datetimes")
    return dt.astimezone(UTC)
