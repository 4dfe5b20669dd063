"""The schedule source on a virtual clock: every fire time once, whatever the clock does.

Before, the loop checked ``now()``, then slept until ``next_after(now())`` read from a later
``now()``: a boundary crossed between the two reads was skipped for ever (live, 3 of 8
every-minute fire times never ran). A mark recorded in the future (a clock set back) fired
nothing, silently.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automations.model import Recipe
from automations.recipes.compiler import load_recipe_text
from automations.records import RunRecord
from automations.runner.sources import run_schedule
from automations.stores import MemoryStore

T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _recipe(schedule: str) -> Recipe:
    text = (
        f"name: tick\ntrigger: {{schedule: {schedule}}}\n"
        'actions:\n  - http.request: {method: POST, url: "https://x.example/tick"}\n'
    )
    result = load_recipe_text(text, "tick.yaml", base_dir=Path("."), env={})
    assert result.recipe is not None, result.diagnostics
    return result.recipe


class Finished(Exception):
    """The virtual clock passed the end of the test."""


class VirtualClock:
    """``now()`` moves on by ``read`` at each read (the work between two reads takes time);
    ``sleep(s)`` moves it on by ``s`` plus ``late`` (negative: the timer fires early, as when
    the wall clock runs a little fast against the monotonic one), or by ``jumps[i]`` instead on
    the i-th sleep when given (a stall, a suspended laptop)."""

    def __init__(
        self,
        start: datetime,
        end: datetime,
        *,
        read: timedelta = timedelta(milliseconds=2),
        late: timedelta = timedelta(0),
        jumps: dict[int, timedelta] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.t, self.end = start, end
        self.read, self.late = read, late
        self.jumps = jumps or {}
        self.rng = rng
        self.sleeps = 0

    def now(self) -> datetime:
        t = self.t
        step = self.read
        if self.rng is not None:
            step = timedelta(milliseconds=self.rng.uniform(0, 20))
        self.t += step
        return t

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps > 10_000:
            raise AssertionError("the loop spins")
        late = self.late
        if self.rng is not None:
            late = timedelta(milliseconds=self.rng.uniform(-5, 500))
        jump = self.jumps.get(self.sleeps)
        self.t += jump if jump is not None else max(timedelta(seconds=seconds) + late, timedelta(0))
        if self.t > self.end:
            raise Finished
        await asyncio.sleep(0)


def _fire(clock: VirtualClock, recipe: Recipe, store: MemoryStore) -> list[str]:
    """Run the schedule until the clock passes its end; the event keys enqueued, in order."""
    keys: list[str] = []

    def enqueue(items: Sequence[tuple[RunRecord, str | None]]) -> None:
        for run, is_new in store.enqueue_many([r for r, _ in items]):
            if is_new:
                keys.append(run.event_key)

    async def go() -> None:
        with pytest.raises(Finished):
            await run_schedule(
                recipe, store, enqueue, asyncio.Event(), now=clock.now, sleep=clock.sleep
            )

    asyncio.run(go())
    return keys


def _minutes(first: datetime, count: int) -> list[str]:
    return [(first + i * MINUTE).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(count)]


def test_timers_firing_early_do_not_skip_boundaries() -> None:
    # each read of the clock takes 2 ms and every sleep ends 3 ms early: the loop wakes 1 ms
    # before the boundary; the old loop found nothing due, read the clock again past the
    # boundary and slept until the one after: it fired nothing at all
    clock = VirtualClock(T0, T0 + 10 * MINUTE, late=-timedelta(milliseconds=3))
    keys = _fire(clock, _recipe('{cron: "* * * * *"}'), MemoryStore())
    assert keys == _minutes(datetime(2026, 3, 2, 10, 1, tzinfo=UTC), 10)


def test_slow_reads_and_jittery_timers_hit_every_boundary() -> None:
    for seed in range(5):
        clock = VirtualClock(T0, T0 + 10 * MINUTE, rng=random.Random(seed))
        keys = _fire(clock, _recipe('{cron: "* * * * *"}'), MemoryStore())
        assert keys == _minutes(datetime(2026, 3, 2, 10, 1, tzinfo=UTC), 10), seed


def test_jumps_over_two_boundaries_at_a_time_run_both() -> None:
    # every 1 s (grace 2 s), and each sleep lasts 1.9 s whatever it asked for: the turns see
    # the clock at 10:00:00.5, 02.4, 04.3, ... 23.3 (and 25.2, past the end), and most of
    # them have passed two fire times since the turn before
    start = datetime(2026, 3, 2, 10, 0, 0, 500_000, tzinfo=UTC)
    jumps = {i: timedelta(seconds=1.9) for i in range(1, 20)}
    clock = VirtualClock(start, start + timedelta(seconds=24), jumps=jumps)
    keys = _fire(clock, _recipe("{every: 1s}"), MemoryStore())
    # on first activation 09:59:59 and 10:00:00 are both within grace
    assert keys == ["2026-03-02T09:59:59Z"] + [f"2026-03-02T10:00:{s:02d}Z" for s in range(24)]


def test_a_stall_across_boundaries_runs_those_still_on_time() -> None:
    # every 10 s (grace 2 s): after firing 10:00:20 the 3rd sleep lasts 21.5 s instead of 10,
    # waking at 10:00:41.5: 10:00:40 is within grace and runs, 10:00:30 was missed (skip)
    clock = VirtualClock(
        datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC),
        datetime(2026, 3, 2, 10, 1, 5, tzinfo=UTC),
        jumps={3: timedelta(seconds=21.5)},
    )
    keys = _fire(clock, _recipe("{every: 10s}"), MemoryStore())
    assert keys == [f"2026-03-02T10:00:{s:02d}Z" for s in (10, 20, 40, 50)] + [
        "2026-03-02T10:01:00Z"
    ]


def test_a_long_stall_follows_the_missed_policy(caplog: pytest.LogCaptureFixture) -> None:
    start, end = T0, T0 + 6 * MINUTE
    stall = {2: timedelta(minutes=3, seconds=20)}  # the 2nd sleep ends at 10:04:50 or so
    with caplog.at_level(logging.WARNING, logger="automations.runner"):
        skipped = _fire(
            VirtualClock(start, end, jumps=stall), _recipe('{cron: "* * * * *"}'), MemoryStore()
        )
    assert skipped == _minutes(datetime(2026, 3, 2, 10, 1, tzinfo=UTC), 1) + _minutes(
        datetime(2026, 3, 2, 10, 5, tzinfo=UTC), 2
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "recipe tick: fire times 2026-03-02T10:02:00Z to 2026-03-02T10:04:00Z were missed "
        "(the runner was down or stalled); they are skipped (missed: skip)"
    ]
    once = _fire(
        VirtualClock(start, end, jumps=stall),
        _recipe('{cron: "* * * * *", missed: run_once}'),
        MemoryStore(),
    )
    assert once == [
        "2026-03-02T10:01:00Z",
        "2026-03-02T10:04:00Z",  # the latest missed, run late, once
        "2026-03-02T10:05:00Z",
        "2026-03-02T10:06:00Z",
    ]


def test_position_is_recorded_and_a_restart_continues_from_it() -> None:
    store = MemoryStore()
    recipe = _recipe('{cron: "* * * * *", missed: run_once}')
    first = _fire(VirtualClock(T0, T0 + 3 * MINUTE), recipe, store)
    assert first == _minutes(datetime(2026, 3, 2, 10, 1, tzinfo=UTC), 3)
    assert store.get_state("schedule:tick", "last_fired") == "2026-03-02T10:03:00+00:00"
    # down from 10:03:30 to 10:05:20: 10:04 and 10:05 were missed, run_once runs 10:05
    restart = datetime(2026, 3, 2, 10, 5, 20, tzinfo=UTC)
    second = _fire(VirtualClock(restart, restart + 2 * MINUTE), recipe, store)
    assert second == _minutes(datetime(2026, 3, 2, 10, 5, tzinfo=UTC), 3)


def test_a_mark_in_the_future_is_replaced_by_now(caplog: pytest.LogCaptureFixture) -> None:
    # the clock ran an hour fast and was corrected: the recorded mark is at 11:00
    store = MemoryStore()
    store.set_state("schedule:tick", [("last_fired", "2026-03-02T11:00:00+00:00")])
    with caplog.at_level(logging.WARNING, logger="automations.runner"):
        keys = _fire(VirtualClock(T0, T0 + 3 * MINUTE), _recipe('{cron: "* * * * *"}'), store)
    # the next boundaries fire at once (the old loop waited for 11:01), with no burst of the
    # fire times between now and the mark
    assert keys == _minutes(datetime(2026, 3, 2, 10, 1, tzinfo=UTC), 3)
    assert store.get_state("schedule:tick", "last_fired") == "2026-03-02T10:03:00+00:00"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "recipe tick: its last fire time 2026-03-02T11:00:00Z is later than the clock "
        "(2026-03-02T10:00:30Z); the clock was set back: resuming from now"
    ]


def test_clock_set_back_while_running_fires_nothing_twice() -> None:
    store = MemoryStore()
    # at the 3rd sleep the clock goes back 2 min 30 s (from about 10:02:00 to 10:00:30 again)
    clock = VirtualClock(T0, T0 + 5 * MINUTE, jumps={3: -timedelta(minutes=1, seconds=30)})
    keys = _fire(clock, _recipe('{cron: "* * * * *"}'), store)
    # 10:01 and 10:02 are not run again (their runs are recorded: the inbox keeps one per key)
    assert keys == _minutes(datetime(2026, 3, 2, 10, 1, tzinfo=UTC), 5)
    assert len(keys) == len(set(keys))
