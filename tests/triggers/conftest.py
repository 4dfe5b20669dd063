"""Fixtures for the trigger tests: a dict-backed ``StateStore`` (the real stores live in
``automations/stores`` and have their own contract tests)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from automations.ports import StateStore


class MemoryStateStore(StateStore):
    """Keeps state in a dict and counts ``set_state`` calls (each one is a transaction)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, str]] = {}
        self.transactions = 0

    def get_state(self, scope: str, key: str) -> str | None:
        return self.data.get(scope, {}).get(key)

    def set_state(self, scope: str, items: Iterable[tuple[str, str]]) -> None:
        self.data.setdefault(scope, {}).update(items)
        self.transactions += 1

    def all_state(self, scope: str) -> dict[str, str]:
        return dict(self.data.get(scope, {}))


@pytest.fixture
def state() -> MemoryStateStore:
    return MemoryStateStore()
