"""The database table source task: a database it cannot reach is reported without its secrets and
tried again; PostgreSQL's NOTIFY (``automations db notify-sql``) wakes it long before its poll."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from automations.model import DbTableSpec, ExistingRows, Recipe, TableTrigger
from automations.records import RunRecord
from automations.runner.db_source import run_db_table
from automations.stores import MemoryStore
from automations.triggers.table_db import notify_sql
from tests.triggers.databases import open_database

pytestmark = pytest.mark.integration


def _recipe(spec: DbTableSpec) -> Recipe:
    return Recipe("crm", Path("crm.yaml"), "0" * 16, TableTrigger(spec), ())


async def _watch(
    spec: DbTableSpec, env: dict[str, str], until: Any, timeout: float = 30.0
) -> tuple[list[RunRecord], list[str | None]]:
    runs: list[RunRecord] = []
    errors: list[str | None] = []
    started = asyncio.Event()
    source = run_db_table(
        _recipe(spec),
        MemoryStore(),
        lambda batch: runs.extend(r for r, _ in batch),
        started,
        lambda name, error: errors.append(error),
        env=env,
    )
    task = asyncio.get_running_loop().create_task(source)
    try:
        await asyncio.wait_for(started.wait(), timeout)
        deadline = time.monotonic() + timeout
        while not until(runs, errors) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return runs, errors


def test_an_unreachable_database_is_reported_without_its_password() -> None:
    spec = DbTableSpec(
        database="postgresql://crm:${CRM_PW}@127.0.0.1:1/crm",
        table="leads",
        key="id",
        poll_s=0.1,
        env_names=frozenset({"CRM_PW"}),
    )
    _, errors = asyncio.run(
        _watch(spec, {"CRM_PW": "s3cr3t-pw"}, lambda runs, errors: bool(errors), timeout=20)
    )
    (error,) = errors  # reported once, however many polls failed
    assert error is not None
    assert error.startswith("cannot open database postgresql://crm:${CRM_PW}@127.0.0.1:1/crm: ")
    assert "s3cr3t-pw" not in error


def test_a_missing_variable_is_reported() -> None:
    spec = DbTableSpec(database="${CRM_URL}", table="leads", key="id", poll_s=0.1)
    _, errors = asyncio.run(_watch(spec, {}, lambda runs, errors: bool(errors), timeout=20))
    assert errors == [
        "database ${CRM_URL}: environment variable CRM_URL is not set; set it before the "
        "runner starts"
    ]


def test_notify_wakes_the_trigger_long_before_its_poll(tmp_path: Path) -> None:
    """With the trigger ``db notify-sql`` prints installed, a row inserted is recorded within
    seconds although the poll interval is 10 minutes."""
    with open_database("postgres", tmp_path) as db:
        db.sql("CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT)")
        db.sql(notify_sql("leads"))
        spec = DbTableSpec(
            database=db.url,
            table="leads",
            key="id",
            poll_s=600.0,
            existing_rows=ExistingRows.SKIP,
        )
        inserted: list[float] = []

        def until(runs: list[RunRecord], errors: list[str | None]) -> bool:
            if not inserted and time.monotonic() > start + 1.0:  # LISTEN is in place by then
                db.sql("INSERT INTO leads VALUES (1, 'a@x.io')")
                inserted.append(time.monotonic())
            return bool(runs)

        start = time.monotonic()
        runs, errors = asyncio.run(_watch(spec, {}, until, timeout=60))
        assert [r.event_key for r in runs] == ["1"]
        assert errors == []
