from __future__ import annotations

import automations.triggers


def test_public_names_are_pinned() -> None:
    assert automations.triggers.__all__ == [
        "ScheduleClock",
        "TableEvent",
        "TableProblem",
        "TableReader",
        "default_event_id",
        "fire_key",
        "parse_every",
        "sign_openphone",
        "sign_standard",
        "table_format",
        "validate_cron",
        "verify_webhook",
    ]
    for name in automations.triggers.__all__:
        assert getattr(automations.triggers, name).__module__.startswith("automations.triggers.")
