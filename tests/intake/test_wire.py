"""Messages between the runner and its intake process, and the intake's settings."""

from __future__ import annotations

from typing import Any

import pytest

from automations.errors import ConfigError
from automations.intake.priority import runner_nice
from automations.intake.wire import Framer, encode


def test_messages_split_and_joined_anyhow_arrive_whole_and_in_order() -> None:
    got: list[tuple[Any, ...]] = []
    closed: list[bool] = []
    framer = Framer(got.append, lambda: closed.append(True))
    messages = [("recorded", {"hook": 3}), ("health?", 1, True), ("rejected", {"size": 2})]
    data = b"".join(encode(m) for m in messages)
    for size in (1, 3, 7, len(data)):
        got.clear()
        for start in range(0, len(data), size):
            framer.data_received(data[start : start + size])
        assert got == messages
    framer.connection_lost(None)
    assert closed == [True]


@pytest.mark.parametrize(("value", "nice"), [(None, 0), ("", 0), ("0", 0), (" 7 ", 7), ("19", 19)])
def test_runner_nice_is_off_unless_asked(value: str | None, nice: int) -> None:
    env = {} if value is None else {"AUTOMATIONS_RUNNER_NICE": value}
    assert runner_nice(env) == nice


@pytest.mark.parametrize("value", ["-1", "20", "high", "1.5"])
def test_a_bad_runner_nice_says_what_is_accepted(value: str) -> None:
    with pytest.raises(ConfigError, match="whole number from 0 to 19"):
        runner_nice({"AUTOMATIONS_RUNNER_NICE": value})
