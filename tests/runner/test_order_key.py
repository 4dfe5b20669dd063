"""Runs resumed after a restart keep the order key their source gave them."""

from __future__ import annotations

import pytest

from automations.execution.executor import new_run
from automations.records import TriggerKind
from automations.runner.ordering import source_order_key as _order_key


@pytest.mark.parametrize(
    ("trigger", "event_key", "expected"),
    [
        (TriggerKind.TABLE, "ada@example.com", "r:ada@example.com"),
        (TriggerKind.TABLE, "ada@example.com@0123456789abcdef", "r:ada@example.com"),
        (TriggerKind.TABLE, "42@0123456789abcdef", "r:42"),
        (TriggerKind.TABLE, "x@not-a-digest", "r:x@not-a-digest"),
        (TriggerKind.SCHEDULE, "2026-01-05T14:00:00Z:ada@example.com", "r:ada@example.com"),
        (TriggerKind.SCHEDULE, "2026-01-05T14:00:00Z", None),
        (TriggerKind.WEBHOOK, "msg_1", None),
    ],
)
def test_order_key_matches_the_sources(
    trigger: TriggerKind, event_key: str, expected: str | None
) -> None:
    assert _order_key(new_run("r", trigger, event_key, {})) == expected
