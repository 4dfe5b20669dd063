"""Session-wide clean-up for the PostgreSQL test schema (``tests/postgres.py``)."""

from __future__ import annotations

import pytest

from tests.postgres import drop_shared_schema


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drop_shared_schema()
