"""The runtime side of the three trigger kinds, each independent of the runner.

- ``verify``: is an incoming webhook genuine (Standard Webhooks, Quo/OpenPhone, token)?
- ``table``: which rows of a CSV / JSONL table are new or changed (``TableReader``).
- ``schedule``: when a cron / every schedule fires and which fire times are due.
"""

from __future__ import annotations

from automations.triggers.schedule import ScheduleClock, fire_key, parse_every, validate_cron
from automations.triggers.table import TableEvent, TableProblem, TableReader
from automations.triggers.table_records import table_format
from automations.triggers.verify import (
    default_event_id,
    sign_openphone,
    sign_standard,
    verify_webhook,
)

__all__ = [
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
