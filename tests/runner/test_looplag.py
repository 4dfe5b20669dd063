"""The runner's loop-lag measure (``AUTOMATIONS_DEBUG_LOOP_LAG``): which values turn it on, that a
blocked loop is seen as late by at least as long as it was blocked, and the line it logs."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

from automations.runner.looplag import ENV_VAR, LoopLag, report_interval

_LINE = re.compile(
    r"event loop lag: max \d+\.\d ms over the last \d+\.\d s \(max since start \d+\.\d ms\)"
)


@pytest.mark.parametrize(
    ("value", "every"),
    [
        ("1", 1.0),
        ("2.5", 2.5),
        ("0.01", 0.1),  # at most ten lines a second
        ("0", None),
        ("", None),
        ("-1", None),
        ("yes", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_the_variable_gives_the_report_interval(value: str, every: float | None) -> None:
    assert report_interval({ENV_VAR: value}) == every


def test_unset_measures_nothing() -> None:
    assert report_interval({}) is None


def test_a_blocked_loop_is_seen_late_by_at_least_the_block() -> None:
    async def go() -> LoopLag:
        lag = LoopLag(tick_s=0.005)
        task = asyncio.get_running_loop().create_task(lag.run())
        await asyncio.sleep(0.05)  # a few ticks measured
        time.sleep(0.3)  # a synchronous section: nothing else runs on the loop meanwhile
        await asyncio.sleep(0.05)
        task.cancel()
        return lag

    lag = asyncio.run(go())
    assert lag.ticks >= 2
    assert lag.max_s >= 0.29
    assert lag.take() == lag.max_s  # the window held it too
    assert lag.take() == 0.0  # and a new window starts empty


def test_the_report_logs_the_longest_lag_of_each_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "automations.runner"]

    async def go() -> None:
        task = asyncio.get_running_loop().create_task(LoopLag().report(0.1))
        deadline = time.monotonic() + 30
        while len(lines()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="automations.runner"):
        asyncio.run(go())
    assert len(lines()) >= 2
    for line in lines():
        assert _LINE.fullmatch(line), line
