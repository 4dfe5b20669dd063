"""The console inside the real ``automations run``: its own listener, the bind rule, live runs
over server-sent events, and a stop that open event streams do not hold up."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import (
    LOOPS_HOOK,
    Fakes,
    StartRunner,
    dumps,
    standard_headers,
    write_recipe,
)
from tests.acceptance.runner_process import WAIT_S, RunnerProcess, free_port, wait_until

pytestmark = pytest.mark.acceptance


def _start(
    start_runner: StartRunner, recipes_dir: Path, *args: str, **kw: Any
) -> tuple[RunnerProcess, str]:
    write_recipe(recipes_dir, "hook.yaml", LOOPS_HOOK)
    ui = free_port()
    runner = start_runner(recipes_dir, "--ui-port", str(ui), *args, **kw)
    return runner, f"http://127.0.0.1:{ui}"


def test_the_console_has_its_own_listener(
    start_runner: StartRunner, recipes_dir: Path, fakes: Fakes
) -> None:
    runner, ui = _start(start_runner, recipes_dir)
    body = dumps({"email": "ada@example.com"})
    assert runner.post("/hooks/loops", body, standard_headers(body, "msg_1")).status_code == 202
    wait_until(lambda: runner.runs(), "the run")
    page = httpx.get(f"{ui}/runs", timeout=10)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert 'class="recipe">loops-hook</td>' in page.text
    assert 'class="key">msg_1</td>' in page.text  # the delivery's id is its event key
    # the webhook port serves no page of the console
    other = httpx.get(runner.url("/runs"), timeout=10)
    assert "<html" not in other.text
    assert f"console on {ui}" in runner.log


def test_new_runs_arrive_on_the_event_stream_and_a_stop_ends_it(
    start_runner: StartRunner, recipes_dir: Path, fakes: Fakes
) -> None:
    runner, ui = _start(start_runner, recipes_dir, "--grace", "2")
    events: list[dict[str, object]] = []
    ended = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{ui}/events", timeout=WAIT_S) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        ended.set()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(1.5)  # the stream has taken its starting point
    body = dumps({"email": "grace@example.com"})
    runner.post("/hooks/loops", body, standard_headers(body, "msg_live"))
    run = wait_until(lambda: [e for e in events if e.get("status") == "succeeded"], "a run event")
    assert 'class="key">msg_live</td>' in str(run[0]["html"])
    assert [r["id"] for r in runner.runs()] == [run[0]["id"]]
    started = time.monotonic()
    assert runner.stop() == 0
    assert time.monotonic() - started < 10
    assert ended.wait(5)


def test_a_console_on_another_address_needs_a_token(tmp_path: Path, recipes_dir: Path) -> None:
    write_recipe(recipes_dir, "hook.yaml", LOOPS_HOOK)
    done = subprocess.run(
        [sys.executable, "-m", "automations", "run", str(recipes_dir), "--db",
         str(tmp_path / "a.db"), "--port", str(free_port()), "--ui-host", "0.0.0.0"],
        capture_output=True, text=True, timeout=WAIT_S,
        env={"PATH": "/usr/bin:/bin", "HOOK_SECRET": "whsec_c2VjcmV0"},
    )  # fmt: skip
    assert done.returncode == 1
    assert "the console would listen on 0.0.0.0, which other machines can reach" in done.stderr
    assert "set AUTOMATIONS_UI_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "a.db").exists()


def test_the_console_port_is_never_the_webhook_port(tmp_path: Path, recipes_dir: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "automations", "run", str(recipes_dir), "--db",
         str(tmp_path / "a.db"), "--port", str(port), "--ui-port", str(port)],
        capture_output=True, text=True, timeout=WAIT_S,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"--ui-port {port} is the webhook port" in done.stderr


def test_a_console_port_asked_for_and_taken_stops_the_start(
    tmp_path: Path, recipes_dir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ui = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "automations", "run", str(recipes_dir), "--db",
             str(tmp_path / "a.db"), "--port", str(free_port()), "--ui-port", str(ui)],
            capture_output=True, text=True, timeout=WAIT_S,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{ui}" in done.stderr
    assert "pick another --ui-port (or --no-ui)" in done.stderr


def test_no_ui_serves_no_console(start_runner: StartRunner, recipes_dir: Path) -> None:
    write_recipe(recipes_dir, "hook.yaml", LOOPS_HOOK)
    ui = free_port()
    runner = start_runner(recipes_dir, "--ui-port", str(ui), "--no-ui")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ui}/runs", timeout=2)
    assert "console on" not in runner.log


def test_metrics_are_served_on_the_console_behind_its_token(
    start_runner: StartRunner, recipes_dir: Path, fakes: Fakes
) -> None:
    token = "a-token-for-the-metrics-test"
    runner, ui = _start(start_runner, recipes_dir, env={"AUTOMATIONS_UI_TOKEN": token})
    body = dumps({"email": "ada@example.com"})
    runner.post("/hooks/loops", body, standard_headers(body, "msg_m"))
    wait_until(lambda: runner.runs() and runner.runs()[0]["status"] == "succeeded", "the run")
    refused = httpx.get(f"{ui}/metrics", timeout=10)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="automations"'
    assert "automations_" not in refused.text
    scraped = httpx.get(f"{ui}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert scraped.status_code == 200
    assert "automations_store_up 1.0" in scraped.text
    assert "automations_queued_runs" in scraped.text
    assert httpx.get(runner.url("/metrics"), timeout=10).status_code != 200  # not the webhook port
