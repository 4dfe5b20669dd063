"""``automations approve`` / ``discard`` as a subprocess on a real database."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from automations.records import RunStatus
from automations.stores import SQLiteStore
from tests.stores.factories import make_run

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _db(tmp_path: Path) -> Path:
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    store.enqueue_many(
        [make_run(f"h{i}", recipe="leads", status=RunStatus.HELD) for i in range(4)]
        + [make_run("x1", recipe="other", status=RunStatus.HELD)]
    )
    store.close()
    return db


def _statuses(db: Path) -> dict[str, int]:
    store = SQLiteStore(db)
    try:
        return {s.value: store.count(s) for s in RunStatus if store.count(s)}
    finally:
        store.close()


def test_approve_releases_to_pending(cli: Cli, tmp_path: Path) -> None:
    db = _db(tmp_path)
    result = cli("approve", "--recipe", "leads", "--db", str(db))
    assert (result.returncode, result.stdout) == (
        0,
        "approved 4 held run(s) of leads: they run now\n",
    )
    assert _statuses(db) == {"pending": 4, "held": 1}


def test_discard_then_nothing_is_held(cli: Cli, tmp_path: Path) -> None:
    db = _db(tmp_path)
    result = cli("discard", "--recipe", "leads", "--db", str(db))
    assert result.stdout == "discarded 4 held run(s) of leads: nothing was sent\n"
    again = cli("approve", "--recipe", "leads", "--db", str(db))
    assert again.returncode == 0
    assert again.stdout == "no held runs for recipe leads\nheld runs wait for: other (1)\n"
    assert _statuses(db) == {"discarded": 4, "held": 1}


def test_a_missing_database_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("approve", "--recipe", "leads", "--db", str(tmp_path / "nope.db"))
    assert result.returncode == 2
    assert "no run database at" in result.stderr
    assert not (tmp_path / "nope.db").exists()
