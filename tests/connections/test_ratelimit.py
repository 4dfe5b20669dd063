from __future__ import annotations

import asyncio
import itertools

import pytest

from automations.ratelimit import RateLimiter
from tests.fakes import VirtualClock


def run_burst(limiter: RateLimiter, clock: VirtualClock, n: int) -> list[tuple[int, float]]:
    releases: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await limiter.acquire()
        releases.append((i, clock()))

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(n)))

    asyncio.run(main())
    return releases


def test_releases_are_evenly_spaced_and_first_come_first_served() -> None:
    clock = VirtualClock(start=100.0)
    limiter = RateLimiter(10, 1.0, guard=0.01, clock=clock, sleep=clock.sleep)
    releases = run_burst(limiter, clock, 25)
    assert [i for i, _ in releases] == list(range(25))
    gaps = [round(b - a, 9) for (_, a), (_, b) in itertools.pairwise(releases)]
    assert gaps == [0.101] * 24
    assert releases[0][1] == 100.0
    assert limiter.released == 25


def test_any_rate_consecutive_releases_span_more_than_the_window() -> None:
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter(10, 1.0, guard=0.01, clock=clock, sleep=clock.sleep)
    times = [t for _, t in run_burst(limiter, clock, 60)]
    assert min(b - a for a, b in zip(times, times[10:], strict=False)) == pytest.approx(1.01)


def test_a_late_caller_does_not_wait() -> None:
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter(10, 1.0, clock=clock, sleep=clock.sleep)

    async def main() -> None:
        await limiter.acquire()
        clock.now += 5.0
        await limiter.acquire()

    asyncio.run(main())
    assert clock.sleeps == []


def test_small_wake_up_delays_do_not_accumulate() -> None:
    clock = VirtualClock(start=0.0)

    async def late_sleep(seconds: float) -> None:
        await clock.sleep(seconds + 0.001)  # the event loop wakes us 1 ms late, every time

    limiter = RateLimiter(10, 1.0, guard=0.01, clock=clock, sleep=late_sleep)
    times = [t for _, t in run_burst(limiter, clock, 31)]
    assert times[30] == pytest.approx(30 * 0.101 + 0.001)  # on schedule, not 30 ms behind


def test_a_very_late_wake_up_shifts_the_schedule_instead_of_crowding_a_window() -> None:
    clock = VirtualClock(start=0.0)
    calls = 0

    async def sleep(seconds: float) -> None:
        nonlocal calls
        calls += 1
        await clock.sleep(seconds + (0.05 if calls == 1 else 0.0))  # one 50 ms hiccup

    limiter = RateLimiter(10, 1.0, guard=0.01, clock=clock, sleep=sleep)
    times = [t for _, t in run_burst(limiter, clock, 40)]
    assert times[1] == pytest.approx(0.151)
    assert times[11] == pytest.approx(0.151 + 1.005)  # held back by the window check
    assert times[12] == pytest.approx(0.151 + 1.005 + 0.101)  # and the schedule follows
    spans = [b - a for a, b in zip(times, times[10:], strict=False)]
    assert min(spans) >= 1.005 - 1e-9


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    order: list[str] = []

    async def main() -> None:
        limiter = RateLimiter(20, 1.0, guard=0.0)

        async def one(name: str) -> None:
            await limiter.acquire()
            order.append(name)

        first = asyncio.create_task(one("a"))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(one("b"))
        last = asyncio.create_task(one("c"))
        await asyncio.sleep(0)
        doomed.cancel()
        await asyncio.gather(first, last)
        assert doomed.cancelled()

    asyncio.run(main())
    assert order == ["a", "c"]


def test_effective_rate_and_validation() -> None:
    assert RateLimiter(10, 1.0, guard=0.01).effective_rate == pytest.approx(10 / 1.01)
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(10, guard=-0.1)


def test_a_request_that_went_out_late_pushes_the_window_back() -> None:
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter(10, 1.0, guard=0.01, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def main() -> None:
        for i in range(12):
            slot = await limiter.acquire()
            times.append(slot.at)
            if i == 0:
                # The first request spent 80 ms on a connection handshake before going out.
                saved, clock.now = clock.now, clock.now + 0.08
                slot.sent()
                clock.now = saved

    asyncio.run(main())
    assert times[9] == pytest.approx(0.909)
    assert times[10] == pytest.approx(0.08 + 1.005)  # not 1.01: a window from 0.08 holds 10
    assert times[11] == pytest.approx(0.08 + 1.005 + 0.101)
