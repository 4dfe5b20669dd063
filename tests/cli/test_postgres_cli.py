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
