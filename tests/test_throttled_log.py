"""Log lines caused from outside stay at a bounded rate, and what is dropped is counted."""

from __future__ import annotations

import logging

import pytest

from automations.throttled_log import ThrottledLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_writes_the_bound_then_one_line_counting_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    throttled = ThrottledLog(logging.getLogger("t"), per_window=20, window_s=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t"):
        for i in range(100):
            throttled.warning("webhook rejections", "rejected %d", i)
        for i in range(3):  # another kind has its own bound
            throttled.warning("oversized request heads", "head %d", i)
        assert [r.getMessage() for r in caplog.records] == [
            *(f"rejected {i}" for i in range(20)),
            "head 0",
            "head 1",
            "head 2",
        ]
        caplog.clear()
        clock.now += 10.0
        throttled.warning("webhook rejections", "rejected %d", 100)
    assert [r.getMessage() for r in caplog.records] == [
        "80 more webhook rejections were not logged (at most 20 every 10 s)",
        "rejected 100",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
