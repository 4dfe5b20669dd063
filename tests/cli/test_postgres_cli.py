"""Every command takes a ``postgresql://`` URL as ``--db`` or ``AUTOMATIONS_DB`` (the real
command line, a real PostgreSQL server: ``tests/postgres.py``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import REPO
from tests.postgres import fresh_schema

pytestmark = pytest.mark.acceptance
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def test_exec_runs_show_status_and_approve_on_postgres(cli: Cli, tmp_path: Path, pg: str) -> None:
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    lead = str(tmp_path / "recipes" / "new-lead-to-quo.yaml")
    env = {"AUTOMATIONS_DB": pg}
    res = cli("exec", lead, "--key", "ada@example.com", "--dry-run", env=env)
    assert res.returncode == 0, res.stderr
    res = cli("exec", lead, "--key", "grace@example.com", "--dry-run", "--db", pg)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "automations.db").exists()  # nothing went to a SQLite file

    listed = json.loads(cli("runs", "--format", "json", env=env).stdout)
    assert [r["event_key"].rsplit("@", 1)[0] for r in listed] == [
        "grace@example.com",
        "ada@example.com",
    ]
    assert [r["status"] for r in listed] == ["succeeded", "succeeded"]
    by_key = json.loads(cli("runs", "--format", "json", "--key", "ada@example.com", env=env).stdout)
    assert [r["id"] for r in by_key] == [listed[1]["id"]]

    shown = cli("show", str(listed[1]["id"])[:8], "--db", pg)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == (
        f"run {listed[1]['id']}  new-lead-to-quo  succeeded (dry run)"
    )
    status = cli("status", "--format", "json", env=env)
    assert status.returncode == 0, status.stderr
    approve = cli("approve", "--recipe", "new-lead-to-quo", env=env)
    assert (approve.returncode, approve.stdout) == (0, "no held runs for recipe new-lead-to-quo\n")


def test_an_unreachable_database_is_one_line_without_the_password(cli: Cli) -> None:
    url = "postgresql://alice:s3cret-pw@127.0.0.1:1/automations?connect_timeout=2"
    res = cli("runs", "--db", url)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert "cannot open run store postgresql://alice:***@127.0.0.1:1/automations" in res.stderr
    assert "s3cret-pw" not in res.stderr + res.stdout


def test_db_migrate_creates_then_finds_the_schema_up_to_date(cli: Cli, pg: str) -> None:
    from automations.stores.postgres_sql import SCHEMA_VERSION

    shown = pg  # no password in the test URL
    first = cli("db", "migrate", "--db", pg)
    assert (first.returncode, first.stdout) == (
        0,
        f"{shown}: schema created (version {SCHEMA_VERSION})\n",
    ), first.stderr
    again = cli("db", "migrate", env={"AUTOMATIONS_DB": pg})
    assert again.stdout == f"{shown}: schema version {SCHEMA_VERSION}, up to date\n"


def test_db_migrate_of_a_sqlite_file(cli: Cli, tmp_path: Path) -> None:
    from automations.stores.sqlite_schema import SCHEMA_VERSION

    res = cli("db", "migrate", "--db", "runs.db")
    assert res.stdout == f"runs.db: schema created (version {SCHEMA_VERSION})\n", res.stderr
    assert (tmp_path / "runs.db").exists()


def test_db_copy_moves_a_history_and_runs_reads_it(cli: Cli, tmp_path: Path, pg: str) -> None:
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    lead = str(tmp_path / "recipes" / "new-lead-to-quo.yaml")
    for key in ("ada@example.com", "grace@example.com"):
        assert cli("exec", lead, "--key", key, "--dry-run").returncode == 0
    res = cli("db", "copy", "--from", "automations.db", "--to", pg)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "runs: 2 copied, 0 already there",
        "steps: 4 copied, 0 already there",
        "state: 1 copied, 0 already there",
        "audit: 0 copied, 0 already there",
        f"copied automations.db to {pg}",
    ]
    again = cli("db", "copy", "--from", "automations.db", "--to", pg)
    assert again.stdout.splitlines()[0] == "runs: 0 copied, 2 already there"
    local = json.loads(cli("runs", "--format", "json").stdout)
    moved = json.loads(cli("runs", "--format", "json", "--db", pg).stdout)
    assert moved == local


def test_db_copy_refuses_what_it_cannot_do(cli: Cli) -> None:
    res = cli("db", "copy", "--from", "automations.db", "--to", "other.db")
    assert res.returncode == 2
    assert "--to must be a postgresql:// URL, not other.db" in res.stderr
    res = cli("db", "copy", "--from", "missing.db", "--to", "postgresql://u@h/d")
    assert res.returncode == 2
    assert "no run database at missing.db" in res.stderr
