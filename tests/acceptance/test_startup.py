"""``automations run`` fails before anything is consumed: a taken port, a second runner on the
same database; a restart after SIGKILL is not blocked; a dry run without --db never uses up the
events of the real database. Exact counts at the fakes."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, StartRunner, write_recipe
from tests.acceptance.runner_process import WAIT_S, free_port, wait_until

pytestmark = pytest.mark.acceptance

LEADS = "Email,First Name\nada@example.com,Ada\ngrace@example.com,Grace\nalan@example.com,Alan\n"

WELCOME = """
name: welcome
trigger:
  table: {path: data/leads.csv, key: Email, existing_rows: run}
actions:
  - loops.send_event: {email: /Email, eventName: welcome}
"""


@pytest.fixture
def recipes(recipes_dir: Path) -> Path:
    (recipes_dir / "data" / "leads.csv").write_text(LEADS)
    write_recipe(recipes_dir, "welcome.yaml", WELCOME)
    return recipes_dir


def _env(fakes: Fakes) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUO_", "LOOPS_", "MATON_", "AUTOMATIONS_"))
    }
    return base | fakes.env()


def _run(cwd: Path, fakes: Fakes, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "automations", "run", *args],
        cwd=cwd,
        env=_env(fakes),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _runs(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)
    try:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet
    finally:
        conn.close()


def test_a_taken_port_stops_the_start_before_any_row_is_read(
    tmp_path: Path, recipes: Path, fakes: Fakes
) -> None:
    db = tmp_path / "automations.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run(tmp_path, fakes, str(recipes), "--db", str(db), "--port", str(port))
        out, _ = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 1
    assert (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; stop what uses it, "
        "or pick another --port. Nothing was read or recorded." in out
    )
    assert _runs(db) == 0
    assert not db.exists()
    assert fakes.loops.received == []


def test_a_second_runner_on_the_same_database_refuses_to_start(
    tmp_path: Path, recipes: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    runner = start_runner(recipes)
    runner.wait_runs("welcome", 3)
    assert runner.proc is not None
    proc = _run(tmp_path, fakes, str(recipes), "--db", str(runner.db), "--port", str(free_port()))
    out, _ = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 1
    assert out.strip().endswith(
        f"error: another runner (pid {runner.proc.pid}) is using the run database {runner.db}; "
        "stop it first, or give this one its own --db"
    )
    assert runner.running and runner.summary()["status"] == "ok"
    runner.wait_idle()
    assert len(fakes.loops_events()) == 3


def test_a_restart_after_sigkill_is_not_blocked_by_the_lock(
    recipes: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    runner = start_runner(recipes)
    runner.wait_runs("welcome", 3)
    runner.wait_idle()
    runner.kill()
    assert runner.proc is not None and runner.proc.returncode == -signal.SIGKILL
    runner.start()
    assert runner.summary()["status"] == "ok"
    assert len(fakes.loops_events()) == 3


def test_a_dry_run_without_db_uses_its_own_database(
    tmp_path: Path, recipes: Path, fakes: Fakes
) -> None:
    port = str(free_port())
    dry = _run(tmp_path, fakes, str(recipes), "--dry-run", "--port", port)
    try:
        wait_until(lambda: _runs(tmp_path / "automations.dry-run.db") == 3, "3 dry runs")
    finally:
        dry.send_signal(signal.SIGTERM)
        out, _ = dry.communicate(timeout=WAIT_S)
    assert dry.returncode == 0, out
    assert "dry run: recording in automations.dry-run.db" in out
    assert not (tmp_path / "automations.db").exists()
    assert fakes.loops.received == []

    real = _run(tmp_path, fakes, str(recipes), "--port", port)
    try:
        wait_until(lambda: len(fakes.loops_events()) == 3, "the 3 real sends")
    finally:
        real.send_signal(signal.SIGTERM)
        real.communicate(timeout=WAIT_S)
    assert real.returncode == 0
    assert _runs(tmp_path / "automations.db") == 3
    assert _runs(tmp_path / "automations.dry-run.db") == 3
