"""Database table triggers against a real SQLite file and a real PostgreSQL server: inserts,
updates of a read and of an unread column, write-back columns, a restart in the middle of a look,
the ``changed_by`` cursor with equal values, a bulk append held by the flood brake."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from automations.errors import TableDatabaseError
from automations.model import DbTableSpec, ExistingRows, Recipe, TableTrigger
from automations.records import RunRecord, RunStatus
from automations.runner.db_source import _Look
from automations.triggers.table import TableEvent
from automations.triggers.table_db import TableConnection, resolve_database
from automations.triggers.table_db_reader import DbTableReader
from tests.triggers.conftest import MemoryStateStore
from tests.triggers.databases import KINDS, TestDatabase, open_database

pytestmark = pytest.mark.integration

SCOPE = "table:leads-db"
LEADS = (
    "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT, name TEXT, note TEXT, "
    "updated_at TEXT, status TEXT)"
)


@pytest.fixture(params=KINDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    with open_database(request.param, tmp_path) as database:
        database.sql(LEADS)
        yield database


_open: list[TableConnection] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def _spec(db: TestDatabase, **kw: Any) -> DbTableSpec:
    fields: dict[str, Any] = {
        "database": db.url,
        "table": "leads",
        "key": "id",
        "reads": frozenset({"id", "email", "name"}),
    }
    fields.update(kw)
    return DbTableSpec(**fields)


def _reader(
    db: TestDatabase, state: MemoryStateStore, *, batch: int = 1000, **kw: Any
) -> DbTableReader:
    spec = _spec(db, **kw)
    conn = TableConnection(resolve_database(db.url, {}), table=spec.table, query=spec.query)
    _open.append(conn)
    return DbTableReader(spec, conn, state, SCOPE, batch=batch)


def _recipe(spec: DbTableSpec) -> Recipe:
    return Recipe("leads-db", Path("leads.yaml"), "0" * 16, TableTrigger(spec), ())


def _look(reader: DbTableReader) -> list[RunRecord]:
    """One look as the runner makes it; the runs it records."""
    recorded: list[RunRecord] = []
    _Look(_recipe(reader.spec), reader, lambda runs: recorded.extend(r for r, _ in runs)).run()
    return recorded


def _insert(db: TestDatabase, *rows: tuple[Any, ...]) -> None:
    for row in rows:
        db.sql("INSERT INTO leads (id, email, name, updated_at) VALUES (?, ?, ?, ?)", row)


def _keys(runs: list[RunRecord]) -> list[str]:
    return [run.event_key.partition("@")[0] + ("@" if "@" in run.event_key else "") for run in runs]


def test_existing_rows_are_skipped_then_inserts_run_once(
    db: TestDatabase, state: MemoryStateStore
) -> None:
    _insert(db, (1, "a@x.io", "Ann", "t1"))
    reader = _reader(db, state)
    assert _look(reader) == []
    assert reader.activated
    _insert(db, (2, "b@x.io", "Bob", "t2"), (3, "c@x.io", "Cy", "t3"))
    runs = _look(reader)
    assert [r.event_key for r in runs] == ["2", "3"]
    assert runs[0].event == {
        "id": 2,
        "email": "b@x.io",
        "name": "Bob",
        "note": None,
        "updated_at": "t2",
        "status": None,
    }
    assert {r.status for r in runs} == {RunStatus.PENDING}
    assert _look(reader) == []
    # a new reader over the same state (a restart) sees nothing new either
    assert _look(_reader(db, state)) == []


def test_existing_rows_run(db: TestDatabase, state: MemoryStateStore) -> None:
    _insert(db, (1, "a@x.io", "Ann", "t1"), (2, "b@x.io", "Bob", "t2"))
    runs = _look(_reader(db, state, existing_rows=ExistingRows.RUN))
    assert [r.event_key for r in runs] == ["1", "2"]


@pytest.mark.parametrize("changed_by", [None, "updated_at"])
def test_updates_of_a_read_column_run_and_of_an_unread_one_do_not(
    db: TestDatabase, state: MemoryStateStore, changed_by: str | None
) -> None:
    _insert(db, (1, "a@x.io", "Ann", "t1"), (2, "b@x.io", "Bob", "t1"))
    reader = _reader(db, state, run_on_updated=True, changed_by=changed_by)
    assert _look(reader) == []
    db.sql("UPDATE leads SET note = 'called', updated_at = 't2' WHERE id = 1")  # not read
    assert _look(reader) == []
    db.sql("UPDATE leads SET name = 'Ann B', updated_at = 't3' WHERE id = 1")  # read
    runs = _look(reader)
    assert len(runs) == 1
    assert runs[0].event_key.startswith("1@") and len(runs[0].event_key) == 2 + 16
    assert runs[0].event["name"] == "Ann B"
    assert _look(reader) == []
    # changed back: a change too, under a new identity
    db.sql("UPDATE leads SET name = 'Ann', updated_at = 't4' WHERE id = 1")
    back = _look(reader)
    assert len(back) == 1 and back[0].event_key not in {runs[0].event_key, "1"}


@pytest.mark.parametrize("changed_by", [None, "updated_at"])
def test_a_written_back_column_never_runs_the_row_again(
    db: TestDatabase, state: MemoryStateStore, changed_by: str | None
) -> None:
    """``write_back`` columns are left out of the hash, even when the recipe reads the whole row
    (``reads`` None); so is ``changed_by`` (a trigger on the table bumps it on every UPDATE,
    the write-back's too)."""
    _insert(db, (1, "a@x.io", "Ann", "t1"))
    reader = _reader(
        db,
        state,
        run_on_updated=True,
        changed_by=changed_by,
        reads=None,
        written=frozenset({"status"}),
    )
    assert _look(reader) == []
    bump = ", updated_at = 't2'" if changed_by else ""
    db.sql(f"UPDATE leads SET status = '200'{bump} WHERE id = 1")
    assert _look(reader) == []
    db.sql("UPDATE leads SET note = 'x', updated_at = 't3' WHERE id = 1")  # the whole row is read
    assert len(_look(reader)) == 1


def test_a_restart_in_the_middle_of_a_look_runs_every_row_once(
    db: TestDatabase, state: MemoryStateStore
) -> None:
    reader = _reader(db, state, batch=2)
    assert _look(reader) == []
    _insert(db, *[(i, f"l{i}@x.io", f"L{i}", "t") for i in range(1, 8)])
    recorded: list[TableEvent] = []
    pages = reader.look()
    for _ in range(2):  # two pages recorded and committed, then the runner dies
        page = next(pages)
        recorded.extend(page.events)
        reader.commit(page.event_state)
    pages.close()
    again = _look(_reader(db, state, batch=2))
    assert [e.key for e in recorded] == ["1", "2", "3", "4"]
    assert [r.event_key for r in again] == ["5", "6", "7"]


def test_changed_by_cursor_loses_no_row_with_an_equal_value(
    db: TestDatabase, state: MemoryStateStore
) -> None:
    """Rows sharing the cursor's value are read again: one committed later with a smaller key
    (and the same timestamp) still runs, once; pages split inside a run of equal values."""
    reader = _reader(db, state, changed_by="updated_at", batch=2)
    assert _look(reader) == []
    _insert(db, *[(i, f"l{i}@x.io", f"L{i}", "2024-05-01 10:00:00") for i in (10, 11, 12)])
    assert [r.event_key for r in _look(reader)] == ["10", "11", "12"]
    _insert(db, (5, "late@x.io", "Late", "2024-05-01 10:00:00"))  # equal value, smaller key
    assert [r.event_key for r in _look(reader)] == ["5"]
    _insert(db, (4, "old@x.io", "Old", None))  # no changed_by value: never read by the cursor
    _insert(db, (20, "n@x.io", "N", "2024-05-01 10:00:01"))
    assert [r.event_key for r in _look(reader)] == ["20"]
    assert _look(reader) == []


def test_changed_by_cursor_on_a_postgresql_timestamp(tmp_path: Path) -> None:
    """A ``timestamptz`` cursor: kept as ISO text in the state, compared by the server."""
    state = MemoryStateStore()
    with open_database("postgres", tmp_path) as db:
        db.sql(
            "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT, name TEXT, "
            "updated_at TIMESTAMPTZ NOT NULL)"
        )
        stamp = "2024-05-01 10:00:00.123456+00"
        rows = [(i, f"l{i}@x.io", f"L{i}", stamp) for i in (3, 4)]
        db.many("INSERT INTO leads VALUES (?, ?, ?, ?)", rows)
        reader = _reader(db, state, changed_by="updated_at", existing_rows=ExistingRows.RUN)
        assert [r.event_key for r in _look(reader)] == ["3", "4"]
        assert _look(reader) == []
        db.sql("INSERT INTO leads VALUES (1, 'a@x.io', 'A', ?)", [stamp])
        assert [r.event_key for r in _look(_reader(db, state, changed_by="updated_at"))] == ["1"]


def test_a_bulk_append_of_100000_rows_is_held_by_the_flood_brake(
    db: TestDatabase, state: MemoryStateStore
) -> None:
    reader = _reader(db, state, batch=5000)
    _insert(db, (1, "a@x.io", "Ann", "t"))
    assert _look(reader) == []
    rows = [(i, f"l{i}@x.io", f"L{i}", "t") for i in range(2, 100_002)]
    db.many("INSERT INTO leads (id, email, name, updated_at) VALUES (?, ?, ?, ?)", rows)
    runs = _look(reader)
    assert len(runs) == 100_000
    assert {r.status for r in runs} == {RunStatus.HELD}
    assert len({r.event_key for r in runs}) == 100_000
    assert _look(reader) == []


def test_a_look_under_the_flood_limit_runs_pending(
    db: TestDatabase, state: MemoryStateStore
) -> None:
    reader = _reader(db, state, batch=3, flood_limit=5)
    assert _look(reader) == []
    _insert(db, *[(i, f"l{i}@x.io", f"L{i}", "t") for i in range(1, 6)])
    assert [r.status for r in _look(reader)] == [RunStatus.PENDING] * 5
    _insert(db, *[(i, f"l{i}@x.io", f"L{i}", "t") for i in range(6, 12)])
    assert [r.status for r in _look(reader)] == [RunStatus.HELD] * 6


def test_a_query_is_read_as_a_subquery(db: TestDatabase, state: MemoryStateStore) -> None:
    _insert(db, (1, "a@x.io", "Ann", "t"), (2, "b@y.io", "Bob", "t"))
    query = "SELECT id, email, name FROM leads WHERE email LIKE '%@x.io'"
    reader = _reader(db, state, table=None, query=query, existing_rows=ExistingRows.RUN)
    runs = _look(reader)
    assert [(r.event_key, r.event) for r in runs] == [
        ("1", {"id": 1, "email": "a@x.io", "name": "Ann"})
    ]


def test_a_missing_column_is_an_error_and_records_nothing(
    db: TestDatabase, state: MemoryStateStore
) -> None:
    reader = _reader(db, state, reads=frozenset({"id", "Phone"}))
    with pytest.raises(TableDatabaseError) as caught:
        _look(reader)
    assert 'has no column "Phone", which the recipe reads' in str(caught.value)
    assert state.data == {}


def test_a_key_change_in_the_recipe_starts_a_new_generation(
    db: TestDatabase, state: MemoryStateStore
) -> None:
    _insert(db, (1, "a@x.io", "Ann", "t"))
    assert _look(_reader(db, state)) == []
    reader = _reader(db, state, key="email")
    assert _look(reader) == []  # a fresh first activation: existing rows skipped
    _insert(db, (2, "b@x.io", "Bob", "t"))
    assert [r.event_key for r in _look(reader)] == ["b@x.io"]


def test_write_back_updates_one_row_by_key(db: TestDatabase) -> None:
    _insert(db, (1, "a@x.io", "Ann", "t"), (2, "b@x.io", "Bob", "t"))
    conn = TableConnection(resolve_database(db.url, {}), table="leads", query=None, writable=True)
    try:
        assert conn.write_back("id", 2, {"status": "200", "note": {"id": "C1"}}) == 1
        assert conn.write_back("id", 9, {"status": "x"}) == 0
        with pytest.raises(TableDatabaseError) as caught:
            conn.write_back("id", 1, {"nope": 1})
    finally:
        conn.close()
    assert "cannot write back into leads" in str(caught.value)
    assert db.sql("SELECT id, status, note FROM leads ORDER BY id") == [
        (1, None, None),
        (2, "200", '{"id":"C1"}'),
    ]


def test_changing_what_the_recipe_reads_re_records_without_runs(
    db: TestDatabase, state: MemoryStateStore
) -> None:
    _insert(db, (1, "a@x.io", "Ann", "t"))
    assert _look(_reader(db, state, run_on_updated=True)) == []
    reader = _reader(db, state, run_on_updated=True, reads=frozenset({"id", "note"}))
    assert _look(reader) == []
    db.sql("UPDATE leads SET note = 'n' WHERE id = 1")
    assert len(_look(reader)) == 1


def test_spec_is_a_value() -> None:
    spec = DbTableSpec(database="x.db", key="id", table="t")
    assert replace(spec, poll_s=1.0).poll_s == 1.0
