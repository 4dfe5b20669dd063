"""The dispatcher in the real runner: a refused key pauses its connection (nothing fails, nothing
is sent to learn it again), one provider's backlog does not hold up another's, a foreign lock on
the database freezes nobody but the writer, and a database that cannot be written is refused at
start. Exact counts of what the fakes received."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from automations.stores import SQLiteStore
from tests.acceptance.conftest import (
    LOOPS_KEY,
    QUO_KEY,
    Fakes,
    StartRunner,
    dumps,
    standard_headers,
    write_recipe,
)
from tests.acceptance.runner_process import WAIT_S, wait_until

pytestmark = pytest.mark.acceptance

ROWS = 50
WRONG = "loops-key-revoked"

LOOPS_TABLE = """
name: welcome
trigger:
  table: {path: data/people.csv, key: Email, existing_rows: run}
actions:
  - loops.send_event: {email: /Email, eventName: welcome}
"""

SMS_HOOK = """
name: sms-hook
trigger:
  webhook:
    path: /hooks/sms
    verify: {scheme: standard-webhooks, secret: "${HOOK_SECRET}"}
actions:
  - quo.send_sms: {from: "${QUO_FROM}", to: [/phone], content: "Your code is {/code}"}
"""


def _people(recipes_dir: Path, n: int) -> None:
    rows = "".join(f"p{i}@example.com\n" for i in range(n))
    (recipes_dir / "data" / "people.csv").write_text("Email\n" + rows)


def _statuses(runs: list[dict[str, object]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for run in runs:
        out[str(run["status"])] = out.get(str(run["status"]), 0) + 1
    return out


def test_a_refused_key_pauses_the_connection_and_nothing_fails(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    _people(recipes_dir, ROWS)
    write_recipe(recipes_dir, "welcome.yaml", LOOPS_TABLE)
    runner = start_runner(
        recipes_dir, env={"LOOPS_API_KEY": WRONG, "AUTOMATIONS_PROBE_EVERY_S": "3"}
    )

    # three 401s in a row pause the connection: exactly three requests, then nothing
    wait_until(lambda: fakes.loops.count >= 3, "three requests at Loops")
    wait_until(
        lambda: runner.health()["dispatch"]["connections"]["loops"]["state"] == "open",
        "the Loops connection to pause",
    )
    time.sleep(1.0)  # well before the first probe (3 s)
    assert fakes.loops.count == 3
    assert [r.outcome for r in fakes.loops.received] == [401, 401, 401]
    loops = runner.health()["dispatch"]["connections"]["loops"]
    assert loops["reason"] == (
        "answered 401 (authentication failed); Loops rejected the API key: check LOOPS_API_KEY"
    )
    assert runner.summary()["errors"] >= 1  # a probe of /healthz sees it without the token
    runs = runner.runs()
    assert _statuses(runs) == {"pending": ROWS}  # nothing failed
    # the three that got the 401 say so; runs that reached the connection after the pause say
    # that they were not sent; the others never started
    refused = [r for r in runs if "nothing was processed" in str(r["error"])]
    assert len(refused) == 3
    held = [r for r in runs if r["error"] and r not in refused]
    assert all("not sent: the loops connection is paused" in str(r["error"]) for r in held)
    assert WRONG not in runner.log
    assert runner.log.count("loops connection paused") == 1
    # other processes see the pause and its reason in the store: status, and show of a run
    [loops_line] = [c for c in runner.status()["connections"] if c["name"] == "loops"]
    assert loops_line["paused"] == loops["reason"]
    waiting = runner.cli("show", runs[0]["id"])
    assert f"waiting    the loops connection is paused: {loops['reason']} (since " in waiting

    # the first probe (one request) is refused again; then the key is fixed at Loops' end and
    # the next probe succeeds: the connection resumes and every run is sent once
    wait_until(lambda: fakes.loops.count >= 4, "the first probe")
    assert fakes.loops.count == 4
    fakes.loops.keys = frozenset({LOOPS_KEY, WRONG})
    runner.wait_runs("welcome", ROWS)
    runner.wait_idle()
    events = fakes.loops_events()
    assert [e["outcome"] for e in events].count(401) == 4
    accepted = [e for e in events if e["outcome"] == 200]
    assert len(accepted) == ROWS
    assert len({e["key"] for e in accepted}) == ROWS
    assert sorted(e["body"]["email"] for e in accepted) == sorted(
        f"p{i}@example.com" for i in range(ROWS)
    )
    assert _statuses(runner.runs()) == {"succeeded": ROWS}
    assert runner.health()["dispatch"]["connections"]["loops"]["state"] == "closed"
    assert "loops connection resumed" in runner.log
    wait_until(
        lambda: all(c["paused"] is None for c in runner.status()["connections"]),
        "the resumed connection to be recorded",
    )


def test_a_loops_backlog_does_not_hold_up_an_sms(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    _people(recipes_dir, 40)
    write_recipe(recipes_dir, "welcome.yaml", LOOPS_TABLE)
    write_recipe(recipes_dir, "sms-hook.yaml", SMS_HOOK)
    runner = start_runner(recipes_dir, env={"LOOPS_RATE_LIMIT": "10"})
    wait_until(lambda: fakes.loops.count >= 1, "the Loops backlog to start")
    body = dumps({"phone": "+15555550100", "code": "4242"})
    assert runner.post("/hooks/sms", body, standard_headers(body, "sms-1")).status_code == 202
    wait_until(lambda: len(fakes.quo.sent_messages) == 1, "the SMS")
    # the SMS left while the Loops backlog (4 s of pacing) was far from done
    assert fakes.loops.count < 40
    runner.wait_runs(None, 41)
    runner.wait_idle()
    assert len(fakes.quo.sent_messages) == 1
    assert len([e for e in fakes.loops_events() if e["outcome"] == 200]) == 40


def test_a_foreign_lock_on_the_database_freezes_neither_healthz_nor_the_intake(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    write_recipe(recipes_dir, "sms-hook.yaml", SMS_HOOK)
    runner = start_runner(recipes_dir)
    body = dumps({"phone": "+15555550100", "code": "1"})
    assert runner.post("/hooks/sms", body, standard_headers(body, "sms-1")).status_code == 202
    runner.wait_idle()

    # another process (here: this one, through its own connection) holds the write lock for
    # 3 s, as a backup tool would; a webhook meanwhile is recorded all the same (the intake
    # process writes its own inbox file), /healthz answers, and the run waits for the lock
    other = sqlite3.connect(runner.db, timeout=10.0, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        body2 = dumps({"phone": "+15555550100", "code": "2"})
        with httpx.Client(timeout=WAIT_S) as client:
            answer = client.post(
                runner.url("/hooks/sms"), content=body2, headers=standard_headers(body2, "sms-2")
            )
        assert answer.status_code == 202
        slowest = 0.0
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            started = time.monotonic()
            assert runner.summary()["status"] == "ok"
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
        assert len(fakes.quo.sent_messages) == 1  # the second run waits for the lock
    finally:
        other.execute("ROLLBACK")
        other.close()
    # bounded: only a stall of seconds fails (the lock was held for 3 s)
    assert slowest < 1.0
    runner.wait_runs("sms-hook", 2)
    runner.wait_idle()
    assert [m["text"] for m in fakes.quo.sent_messages] == ["Your code is 1", "Your code is 2"]


def test_a_database_that_cannot_be_written_is_refused_at_start(
    recipes_dir: Path, tmp_path: Path, fakes: Fakes
) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    _people(recipes_dir, 3)
    write_recipe(recipes_dir, "welcome.yaml", LOOPS_TABLE)
    db = tmp_path / "readonly.db"
    SQLiteStore(db).close()
    # immutable: not even root may write it (a read-only mount behaves the same)
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        env = {
            "PATH": "/usr/bin:/bin",
            "QUO_API_KEY": QUO_KEY,
            "LOOPS_API_KEY": LOOPS_KEY,
            **fakes.env(),
        }
        done = subprocess.run(
            [sys.executable, "-m", "automations", "run", str(recipes_dir), "--db", str(db)],
            env=env,
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert done.returncode == 1
    assert f"error: run store {db} cannot be written" in done.stderr
    assert "pass --db with a writable path" in done.stderr
    assert "Traceback" not in done.stderr
    assert fakes.loops.count == 0
    check = sqlite3.connect(db)
    try:
        assert check.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert check.execute("SELECT count(*) FROM state").fetchone() == (0,)
    finally:
        check.close()
