"""The runner's progress line for a backlog, on virtual time: exact lines for a backlog that
starts, drains at a steady pace, grows, stalls and ends."""

from __future__ import annotations

import pytest

from automations.execution.progress import BacklogProgress, left_text


def test_a_backlog_draining_at_a_steady_pace() -> None:
    """5,000 leads, 10.5 a second go out (a Loops key at its limit)."""
    progress = BacklogProgress()
    lines = [progress.update(t, {"leads-to-loops": 5000 - round(10.5 * t)}) for t in (0, 10, 40)]
    assert lines == [
        ["leads-to-loops: 0 of 5,000 sent, no estimate yet"],
        ["leads-to-loops: 105 of 5,000 sent, about 8 min left"],  # 4,895 at 10.5/s: 7.8 min
        ["leads-to-loops: 420 of 5,000 sent, about 7 min left"],  # 4,580 at 10.5/s: 7.3 min
    ]


def test_nothing_is_logged_when_nothing_waits_and_a_new_backlog_starts_afresh() -> None:
    progress = BacklogProgress()
    assert progress.update(0, {}) == []
    assert progress.update(10, {"a": 0}) == []
    assert progress.update(20, {"a": 30}) == ["a: 0 of 30 sent, no estimate yet"]
    assert progress.update(30, {"a": 10}) == ["a: 20 of 30 sent, less than a minute left"]
    assert progress.update(40, {}) == []  # done
    assert progress.update(50, {"a": 4}) == ["a: 0 of 4 sent, no estimate yet"]


def test_runs_added_during_the_drain_join_the_total() -> None:
    progress = BacklogProgress()
    progress.update(0, {"a": 100})
    # 90 left at 1 a second
    assert progress.update(10, {"a": 90}) == ["a: 10 of 100 sent, about 2 min left"]
    # 50 more came in: the total grows by what the count grew; 10 sent in 20 s, 140 left
    assert progress.update(20, {"a": 140}) == ["a: 10 of 150 sent, about 5 min left"]


def test_the_pace_is_the_last_minutes() -> None:
    """Fast for a minute, then slow: the estimate follows the slow pace once the fast minute
    has passed."""
    progress = BacklogProgress()
    waiting = 10_000
    for t in range(0, 70, 10):  # 60 a second for a minute
        progress.update(t, {"a": waiting})
        waiting -= 600
    for t in range(70, 140, 10):  # then 1 a second
        line = progress.update(t, {"a": waiting})
        waiting -= 10
    # the last minute (t=70..130) sent 60 runs: 1 a second, 5,740 left (95.7 min); over the
    # whole backlog it would have said 39 min
    assert line == ["a: 4,260 of 10,000 sent, about 1 h 36 min left"]


def test_a_stalled_backlog_says_nothing_went_out() -> None:
    progress = BacklogProgress()
    lines = [progress.update(t, {"a": 7}) for t in range(0, 70, 10)]
    assert lines[1] == ["a: 0 of 7 sent, no estimate yet"]  # not a minute yet
    assert lines[-1] == ["a: 0 of 7 sent, nothing sent in the last minute"]


def test_each_recipe_has_its_line_and_a_reason_replaces_the_estimate() -> None:
    progress = BacklogProgress()
    progress.update(0, {"sms": 3, "loops": 10})
    held = {"sms": "paused: Quo answered 402 (no prepaid credits)"}
    assert progress.update(10, {"sms": 3, "loops": 5}, held) == [
        "loops: 5 of 10 sent, less than a minute left",
        "sms: 0 of 3 sent, paused: Quo answered 402 (no prepaid credits)",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "less than a minute left"),
        (59.9, "less than a minute left"),
        (60, "about 1 min left"),
        (437, "about 7 min left"),
        (3569, "about 59 min left"),
        (3571, "about 1 h 00 min left"),
        (7500, "about 2 h 05 min left"),
    ],
)
def test_time_left_in_words(seconds: float, text: str) -> None:
    assert left_text(seconds) == text
