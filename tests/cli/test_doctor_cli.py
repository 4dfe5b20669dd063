"""``automations doctor`` as a subprocess against the loopback fakes (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import LoopbackServer
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

SMS = """
name: {name}
trigger:
  table: {{path: leads.csv, key: Email}}
actions:
  - quo.send_sms: {{from: "{sender}", to: [/Phone], content: hi}}
  - loops.send_event: {{email: /Email, eventName: texted}}
"""


@pytest.fixture
def fakes() -> Iterator[tuple[QuoFake, LoopsFake, str, str]]:
    quo, loops = QuoFake(["quo-key"], maton_keys=["maton-key"]), LoopsFake(["loops-key"])
    with LoopbackServer(quo) as quo_url, LoopbackServer(loops) as loops_url:
        yield quo, loops, quo_url, loops_url


def doctor(directory: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    return subprocess.run(
        [sys.executable, "-m", "automations", "doctor", str(directory), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _recipes(tmp_path: Path, senders: dict[str, str]) -> Path:
    (tmp_path / "leads.csv").write_text("Email,Phone\n")
    for name, sender in senders.items():
        (tmp_path / f"{name}.yaml").write_text(SMS.format(name=name, sender=sender))
    return tmp_path


def test_all_well(tmp_path: Path, fakes: tuple[QuoFake, LoopsFake, str, str]) -> None:
    quo, loops, quo_url, loops_url = fakes
    pid = quo.add_phone_number("+15555550199")
    directory = _recipes(tmp_path, {"by-number": "+15555550199", "by-id": pid})
    env = {
        "QUO_API_KEY": "quo-key",
        "QUO_BASE_URL": quo_url,
        "LOOPS_API_KEY": "loops-key",
        "LOOPS_BASE_URL": loops_url,
    }
    res = doctor(directory, env)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["CONNECTION", "CHECK", "RESULT", "DETAIL"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["quo", "API"],
        ["quo", "from"],
        ["quo", "from"],
        ["loops", "API"],
    ]
    assert "QUO_API_KEY accepted (1 phone number(s) in the workspace)" in lines[1]
    assert f"+15555550199 ({pid}), US messaging open" in lines[2]
    assert "LOOPS_API_KEY accepted (team Analytical Engines)" in lines[4]
    assert "quo-key" not in res.stdout + res.stderr
    # read-only: one GET per connection, nothing else
    assert [(r.method, r.path) for r in quo.received] == [("GET", "/v1/phone-numbers")]
    assert [(r.method, r.path) for r in loops.received] == [("GET", "/v1/api-key")]


def test_problems_exit_1(tmp_path: Path, fakes: tuple[QuoFake, LoopsFake, str, str]) -> None:
    quo, _, quo_url, loops_url = fakes
    quo.add_phone_number("+15555550199", us_messaging="restricted")
    directory = _recipes(tmp_path, {"restricted": "+15555550199", "stranger": "+15555550142"})
    env = {
        "QUO_API_KEY": "quo-key",
        "QUO_BASE_URL": quo_url,
        "LOOPS_API_KEY": "wrong-key",
        "LOOPS_BASE_URL": loops_url,
    }
    res = doctor(directory, env, "--format", "json")
    assert res.returncode == 1
    rows = json.loads(res.stdout)
    assert [(r["connection"], r["what"], r["verdict"]) for r in rows] == [
        ("quo", "API key", "ok"),
        ("quo", "from +15555550142", "problem"),
        ("quo", "from +15555550199", "problem"),
        ("loops", "API key", "problem"),
    ]
    assert rows[1]["detail"] == (
        "not a number of this workspace (used by stranger): Quo refuses to send from it"
    )
    assert rows[2]["detail"].startswith("US messaging is restricted on +15555550199")
    assert "Loops rejected the API key: check LOOPS_API_KEY" in rows[3]["detail"]
    assert "wrong-key" not in res.stdout + res.stderr


def test_maton_connection_expired(
    tmp_path: Path, fakes: tuple[QuoFake, LoopsFake, str, str]
) -> None:
    quo, loops, quo_url, _ = fakes
    quo.script(500, 500)  # the gateway fails: Maton's answer when the OAuth connection expired
    directory = _recipes(tmp_path, {"by-number": "+15555550199"})
    env = {"MATON_API_KEY": "maton-key", "MATON_BASE_URL": quo_url, "MATON_CONNECTION": "c1"}
    res = doctor(directory, env)
    assert res.returncode == 1
    out = res.stdout.splitlines()
    assert out[1].split()[:4] == ["quo", "Maton", "connection", "problem"]
    assert "reconnect Quo in Maton (MATON_CONNECTION)" in out[1]
    assert out[2].split()[:4] == ["loops", "API", "key", "problem"]
    assert "recipes send to Loops" in out[2]
    assert [r.path for r in quo.received] == ["/quo/v1/phone-numbers"] * 2
    assert loops.received == []
