"""A large SQLite history stays cheap: every ``runs`` filter reads an index in the order listed,
pruning gives the space back (file and WAL), and a file from before schema 7 is converted to
give space back once, only when that is safe."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from automations.records import RunFilter, RunStatus
from automations.stores import SQLiteStore
from automations.stores.sqlite import _RUN_SELECT, VacuumChange, _filter_sql
from automations.stores.sqlite_schema import migrate
from tests.stores.factories import T0, typical_run

pytestmark = pytest.mark.integration

DAY = 86400.0


def _fill(store: SQLiteStore, runs: int, *, old: bool = True, first: int = 0) -> None:
    """``runs`` typical two-step succeeded runs (numbered from ``first``), 40 days old (or
    new)."""
    with store.transaction():
        for i in range(first, first + runs):
            run, steps = typical_run(i, uuid.uuid4().hex, rich=True)
            created = T0 - (40 * DAY if old else 0) + i
            store.enqueue(run.__class__(**{**_fields(run), "created_at": created}))
            for step in steps:
                store.put_step(step)
            store.update_run(run.id, status=RunStatus.SUCCEEDED, finished_at=created + 1)


def _fields(run: object) -> dict[str, object]:
    return {f: getattr(run, f) for f in run.__dataclass_fields__}  # type: ignore[attr-defined]


def _sizes(path: Path) -> tuple[int, int]:
    wal = Path(f"{path}-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


FILTERS = [
    RunFilter(),
    RunFilter(recipe="welcome"),
    RunFilter(status=RunStatus.FAILED),
    RunFilter(recipe="welcome", status=RunStatus.FAILED),
    RunFilter(since=T0),
    RunFilter(until=T0),
    RunFilter(since=T0 - DAY, until=T0),
    RunFilter(recipe="welcome", since=T0 - DAY),
    RunFilter(status=RunStatus.UNKNOWN, since=T0 - DAY, until=T0),
    RunFilter(recipe="welcome", status=RunStatus.HELD, since=T0 - DAY, until=T0),
    RunFilter(recipe="welcome", before=(T0, 12)),
    RunFilter(status=RunStatus.FAILED, since=T0 - DAY, before=(T0, 12)),
]


@pytest.mark.parametrize("flt", FILTERS, ids=repr)
def test_every_runs_filter_reads_one_index_in_the_order_listed(
    tmp_path: Path, flt: RunFilter
) -> None:
    """No scan of the table and no sort: the page is the first rows of an index range, so it
    costs the same at a thousand runs or a million."""
    store = SQLiteStore(tmp_path / "runs.db")
    try:
        where, params = _filter_sql(flt)
        plan = store._db.execute(
            f"EXPLAIN QUERY PLAN {_RUN_SELECT} WHERE {where} "
            "ORDER BY created_at DESC, seq DESC LIMIT 50",
            params,
        ).fetchall()
    finally:
        store.close()
    details = [row[-1] for row in plan]
    assert len(details) == 1, details
    assert details[0].startswith(("SEARCH runs USING INDEX", "SCAN runs USING INDEX runs_created"))
    assert "TEMP B-TREE" not in details[0]


def test_a_runs_key_search_reads_the_key_indexes_only(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    try:
        where, params = _filter_sql(
            RunFilter(key="ada@example.com", recipe="welcome", status=RunStatus.FAILED)
        )
        plan = store._db.execute(
            f"EXPLAIN QUERY PLAN {_RUN_SELECT} WHERE {where} "
            "ORDER BY created_at DESC, seq DESC LIMIT 50",
            params,
        ).fetchall()
    finally:
        store.close()
    searches = [row[-1] for row in plan if row[-1].startswith(("SEARCH", "SCAN"))]
    assert all(s.startswith("SEARCH runs USING") for s in searches), searches
    assert any("runs_event_key" in s for s in searches), searches


def test_pruning_gives_space_back(tmp_path: Path) -> None:
    """Runs past their retention deleted: the file shrinks to what is left and the WAL is
    truncated to nothing."""
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    try:
        _fill(store, 1500)
        _fill(store, 100, old=False, first=1500)
        store._db.execute("PRAGMA wal_checkpoint").fetchall()  # the file holds them all too
        full, wal_full = _sizes(path)
        assert full > 1_000_000 and wal_full > 1_000_000
        removed = store.prune(now=T0 + 1000, keep_succeeded_s=30 * DAY, keep_failed_s=30 * DAY)
        assert removed == 1500
        assert store.count() == 100
        after, wal_after = _sizes(path)
    finally:
        store.close()
    assert wal_after == 0
    assert after < full / 4, (full, after)


def _old_file(path: Path, runs: int) -> None:
    """A file as schema 6 made it (auto_vacuum off), then upgraded, with ``runs`` old runs."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    migrate(db, str(path))
    db.close()
    store = SQLiteStore(path)
    try:
        assert store._db.execute("PRAGMA auto_vacuum").fetchone() == (0,)
        _fill(store, runs)
    finally:
        store.close()


def test_a_file_from_before_schema_5_is_converted_once_then_gives_space_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    _old_file(path, 1000)
    store = SQLiteStore(path)
    try:
        assert store.enable_incremental_vacuum() is VacuumChange.DONE
        assert store.enable_incremental_vacuum() is VacuumChange.ALREADY
        assert store.count() == 1000
        full = _sizes(path)[0]
        store.prune(now=T0, keep_succeeded_s=30 * DAY, keep_failed_s=30 * DAY)
        assert store.count() == 0
        assert _sizes(path) < (full // 4, 1)
    finally:
        store.close()


def test_a_file_too_large_for_here_is_left_as_it_is(tmp_path: Path) -> None:
    """The runner converts small files only; it leaves a large one to ``db migrate``."""
    path = tmp_path / "runs.db"
    _old_file(path, 200)
    store = SQLiteStore(path)
    try:
        assert store.enable_incremental_vacuum(max_bytes=10_000) is VacuumChange.TOO_LARGE
        assert store._db.execute("PRAGMA auto_vacuum").fetchone() == (0,)
        store.prune(now=T0, keep_succeeded_s=30 * DAY, keep_failed_s=30 * DAY)
        assert store.count() == 0  # pruning works all the same; the WAL is still truncated
        assert _sizes(path)[1] == 0
    finally:
        store.close()


def test_a_file_without_room_for_its_copy_is_left_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    path = tmp_path / "runs.db"
    _old_file(path, 50)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=path.stat().st_size))
    store = SQLiteStore(path)
    try:
        assert store.enable_incremental_vacuum() is VacuumChange.NO_SPACE
        assert store._db.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    finally:
        store.close()
