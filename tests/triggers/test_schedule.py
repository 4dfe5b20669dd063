from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from automations.model import Missed, ScheduleTrigger
from automations.triggers.schedule import ScheduleClock, fire_key, parse_every, validate_cron

NY = ZoneInfo("America/New_York")


def _cron(expr: str, tz: str = "America/New_York", **kw: object) -> ScheduleClock:
    return ScheduleClock(ScheduleTrigger(cron=expr, timezone=tz, **kw))  # type: ignore[arg-type]


def _every(text: str, **kw: object) -> ScheduleClock:
    return ScheduleClock(ScheduleTrigger(every=parse_every(text), **kw))  # type: ignore[arg-type]


def _fires(clock: ScheduleClock, start: datetime, count: int) -> list[str]:
    out = []
    for _ in range(count):
        start = clock.next_after(start)
        out.append(fire_key(start))
    return out


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- cron and daylight saving time -------------------------------------------------------------


def test_spring_forward_skipped_time_fires_once_after_the_gap() -> None:
    # 2024-03-10: America/New_York jumps from 02:00 EST to 03:00 EDT; 02:30 does not exist.
    clock = _cron("30 2 * * *")
    fires = _fires(clock, datetime(2024, 3, 9, 12, tzinfo=NY), 3)
    assert fires == [
        "2024-03-10T07:00:00Z",  # 03:00 EDT, the first valid minute after the gap
        "2024-03-11T06:30:00Z",  # 02:30 EDT
        "2024-03-12T06:30:00Z",
    ]


def test_fall_back_repeated_time_fires_exactly_once() -> None:
    # 2024-11-03: 01:00-02:00 happens twice (EDT, then EST).
    clock = _cron("30 1 * * *")
    assert _fires(clock, datetime(2024, 11, 2, 12, tzinfo=NY), 2) == [
        "2024-11-03T05:30:00Z",  # 01:30 EDT, the first occurrence
        "2024-11-04T06:30:00Z",  # 01:30 EST the next day
    ]
    # Asked from inside the repeated hour (01:15 EST, after 01:30 EDT has fired): not again.
    inside = datetime(2024, 11, 3, 1, 15, tzinfo=NY, fold=1)
    assert fire_key(clock.next_after(inside)) == "2024-11-04T06:30:00Z"
    assert fire_key(clock.next_after(_utc(2024, 11, 3, 5, 30))) == "2024-11-04T06:30:00Z"


def test_hourly_job_runs_in_real_time_across_fall_back() -> None:
    clock = _cron("0 * * * *")
    assert _fires(clock, datetime(2024, 11, 3, 0, 30, tzinfo=NY), 3) == [
        "2024-11-03T05:00:00Z",  # 01:00 EDT
        "2024-11-03T06:00:00Z",  # 01:00 EST
        "2024-11-03T07:00:00Z",  # 02:00 EST
    ]


def test_sunday_is_0_and_7() -> None:
    start = _utc(2024, 1, 1)  # a Monday
    expected = ["2024-01-07T09:00:00Z", "2024-01-14T09:00:00Z"]
    assert _fires(_cron("0 9 * * 0", "UTC"), start, 2) == expected
    assert _fires(_cron("0 9 * * 7", "UTC"), start, 2) == expected
    assert _fires(_cron("0 9 * * SUN", "UTC"), start, 2) == expected


def test_cron_in_zone_and_strictly_after() -> None:
    clock = _cron("0 9 * * 1-5")
    at_fire = datetime(2024, 6, 3, 9, tzinfo=NY)  # Monday 09:00 EDT = 13:00Z
    assert fire_key(clock.next_after(at_fire - timedelta(microseconds=1))) == "2024-06-03T13:00:00Z"
    assert fire_key(clock.next_after(at_fire)) == "2024-06-04T13:00:00Z"
    assert clock.next_after(at_fire).tzinfo is UTC


def test_latest_at_or_before() -> None:
    clock = _cron("30 2 * * *")
    assert clock.latest_at_or_before(_utc(2024, 3, 10, 7)) == _utc(2024, 3, 10, 7)
    assert clock.latest_at_or_before(_utc(2024, 3, 10, 6, 59)) == _utc(2024, 3, 9, 7, 30)
    fall = _cron("30 1 * * *")
    inside = datetime(2024, 11, 3, 1, 15, tzinfo=NY, fold=1)
    assert fall.latest_at_or_before(inside) == _utc(2024, 11, 3, 5, 30)


# --- every -------------------------------------------------------------------------------------


def test_every_is_aligned_to_the_epoch() -> None:
    clock = _every("15m")
    assert clock.next_after(_utc(2024, 5, 1, 10, 7, 13)) == _utc(2024, 5, 1, 10, 15)
    assert clock.next_after(_utc(2024, 5, 1, 10, 15)) == _utc(2024, 5, 1, 10, 30)
    # Whatever the start (a restart), the grid is the same.
    assert clock.next_after(datetime(2024, 5, 1, 10, 14, 59, 999999, tzinfo=UTC)) == _utc(
        2024, 5, 1, 10, 15
    )
    assert _every("1d").next_after(datetime(2024, 5, 1, 23, tzinfo=NY)) == _utc(2024, 5, 3)
    assert _every("7s").next_after(_utc(1970, 1, 1, 0, 0, 0)) == _utc(1970, 1, 1, 0, 0, 7)
    assert clock.latest_at_or_before(_utc(2024, 5, 1, 10, 15)) == _utc(2024, 5, 1, 10, 15)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("90s", 90), ("1h30m", 5400),
     ("1d2h3m4s", 93784), (" 2h ", 7200)],
)  # fmt: skip
def test_parse_every(text: str, seconds: int) -> None:
    assert parse_every(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "1.5h", "30m1h", "5x", "-5m", "1h1h"])
def test_parse_every_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_every(text)
    assert str(info.value) == (
        f"invalid interval {text!r}: write a number and a unit (s, m, h, d), "
        "largest unit first, e.g. '30s', '5m', '1h30m', '1d'"
    )


def test_parse_every_rejects_zero() -> None:
    with pytest.raises(ValueError, match=r"^invalid interval '0m': it must be at least 1s$"):
        parse_every("0m")


# --- validate_cron -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "tz", "error"),
    [
        ("*/5 9-17 * * MON-FRI", "America/New_York", None),
        ("0 0 L * *", "UTC", None),
        ("0 0 * * 5#2", "Europe/Paris", None),
        ("0 0 * * * *", "UTC", "a cron expression has 5 fields (minute hour day-of-month month "
         "day-of-week), this one has 6; seconds are not supported"),
        ("* * * *", "UTC", "a cron expression has 5 fields (minute hour day-of-month month "
         "day-of-week), this one has 4"),
        ("@daily", "UTC", "@daily is not supported; write '0 0 * * *' instead"),
        ("@hourly", "UTC", "@hourly is not supported; write '0 * * * *' instead"),
        ("@reboot", "UTC", "@reboot is not supported: write 5 fields (minute hour day month "
         "weekday)"),
        ("61 * * * *", "UTC", "invalid minute field '61'"),
        ("0 24 * * *", "UTC", "invalid hour field '24'"),
        ("0 0 32 * *", "UTC", "invalid day-of-month field '32'"),
        ("0 0 * 13 *", "UTC", "invalid month field '13'"),
        ("0 0 * * 8", "UTC", "invalid day-of-week field '8'"),
        ("0 0 31 2 *", "UTC", "invalid day-of-month field '31'"),
        ("0 9 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus': use an IANA name such "
         "as 'America/New_York'"),
        ("0 9 * * *", "America", "unknown time zone 'America': use an IANA name such as "
         "'America/New_York'"),
    ],
)  # fmt: skip
def test_validate_cron(expr: str, tz: str, error: str | None) -> None:
    assert validate_cron(expr, tz) == error


def test_clock_rejects_bad_triggers() -> None:
    with pytest.raises(ValueError, match=r"^invalid minute field '61'$"):
        _cron("61 * * * *")
    with pytest.raises(ValueError, match="exactly one of cron and every"):
        ScheduleClock(ScheduleTrigger())
    with pytest.raises(ValueError, match="exactly one of cron and every"):
        ScheduleClock(ScheduleTrigger(cron="* * * * *", every=timedelta(minutes=1)))
    with pytest.raises(ValueError, match="at least 1 second"):
        ScheduleClock(ScheduleTrigger(every=timedelta(milliseconds=500)))
    with pytest.raises(ValueError, match="timezone-aware"):
        _every("1m").next_after(datetime(2024, 1, 1))


# --- due ---------------------------------------------------------------------------------------


def test_fire_key_is_utc_to_the_second() -> None:
    assert fire_key(datetime(2024, 3, 10, 3, 0, 0, 500, tzinfo=NY)) == "2024-03-10T07:00:00Z"


def test_due_on_time_and_within_grace() -> None:
    clock = _cron("0 9 * * *", "UTC")
    fire = _utc(2024, 6, 3, 9)
    previous = _utc(2024, 6, 2, 9)
    assert clock.grace(fire) == timedelta(seconds=60)
    assert _every("10s").grace(fire) == timedelta(seconds=2)
    assert _every("5m").grace(fire) == timedelta(seconds=30)
    for missed in Missed:
        assert clock.due(previous, fire, missed) == [fire]
        assert clock.due(previous, fire + timedelta(seconds=60), missed) == [fire]
        assert clock.due(fire, fire + timedelta(seconds=1), missed) == []  # already ran
        assert clock.due(previous, fire - timedelta(seconds=1), missed) == []  # not yet


def test_due_skip_drops_missed_fire_times() -> None:
    clock = _every("1h", missed=Missed.SKIP)
    last = _utc(2024, 6, 3, 1)
    now = _utc(2024, 6, 3, 5, 10)  # 02:00..05:00 were missed
    assert clock.due(last, now) == []
    assert clock.due(last, _utc(2024, 6, 3, 5, 0, 59)) == [_utc(2024, 6, 3, 5)]


def test_due_run_once_runs_only_the_latest_missed() -> None:
    clock = _every("1h", missed=Missed.RUN_ONCE)
    last = _utc(2024, 6, 3, 1)
    now = _utc(2024, 6, 3, 5, 10)
    assert clock.due(last, now) == [_utc(2024, 6, 3, 5)]
    assert clock.due(_utc(2024, 6, 3, 5), now) == []
    # The policy can be given explicitly, overriding the trigger's.
    assert clock.due(last, now, Missed.SKIP) == []


def test_due_after_years_down_is_one_run() -> None:
    clock = _cron("* * * * *", "America/New_York", missed=Missed.RUN_ONCE)
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=NY)
    assert clock.due(_utc(2020, 1, 1), now) == [_utc(2026, 1, 1, 17)]


def test_due_first_activation_starts_from_now() -> None:
    clock = _cron("0 9 * * *", "UTC", missed=Missed.RUN_ONCE)
    assert clock.due(None, _utc(2024, 6, 3, 12)) == []  # 09:00 today is not "missed"
    assert clock.due(None, _utc(2024, 6, 3, 9, 0, 10)) == [_utc(2024, 6, 3, 9)]


def test_due_across_spring_forward() -> None:
    clock = _cron("30 2 * * *", missed=Missed.RUN_ONCE)
    last = _utc(2024, 3, 9, 7, 30)
    assert clock.due(last, _utc(2024, 3, 10, 6, 59)) == []
    assert clock.due(last, _utc(2024, 3, 10, 7, 0, 1)) == [_utc(2024, 3, 10, 7)]


def test_due_runs_every_fire_time_still_on_time() -> None:
    clock = _every("1s")  # grace 2 s
    last = _utc(2024, 6, 3, 9, 0, 0)
    now = _utc(2024, 6, 3, 9, 0, 2) + timedelta(milliseconds=500)
    # 09:00:01 (1.5 s ago) and 09:00:02 are both due: the old due() returned only the latest
    assert clock.due(last, now) == [_utc(2024, 6, 3, 9, 0, 1), _utc(2024, 6, 3, 9, 0, 2)]
    assert clock.due(last, now, Missed.RUN_ONCE) == clock.due(last, now)


def test_missed_names_the_first_and_latest_fire_time_past_grace() -> None:
    clock = _every("10s")  # grace 2 s
    last = _utc(2024, 6, 3, 9, 0, 0)
    assert clock.missed(last, _utc(2024, 6, 3, 9, 0, 11)) is None  # 09:00:10 is on time
    assert clock.missed(last, _utc(2024, 6, 3, 9, 0, 31)) == (
        _utc(2024, 6, 3, 9, 0, 10),
        _utc(2024, 6, 3, 9, 0, 20),  # 09:00:30 is on time: not missed
    )
    assert clock.due(last, _utc(2024, 6, 3, 9, 0, 31)) == [_utc(2024, 6, 3, 9, 0, 30)]
    assert clock.missed(last, _utc(2024, 6, 3, 9, 0, 15)) == (
        _utc(2024, 6, 3, 9, 0, 10),
        _utc(2024, 6, 3, 9, 0, 10),
    )
    run_once = _every("10s", missed=Missed.RUN_ONCE)
    assert run_once.due(last, _utc(2024, 6, 3, 9, 0, 15)) == [_utc(2024, 6, 3, 9, 0, 10)]
