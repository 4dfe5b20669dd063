"""One ``automations run DIR`` process, driven the way a user drives it: over HTTP, with
signals, and through ``automations runs`` / ``show``. The run database is read directly
(read-only) only to *wait* for something; assertions use the CLI's JSON."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from automations.stores.sqlite_inbox import waiting_in_inbox

__all__ = ["CONSOLE_TOKEN", "WAIT_S", "RunnerProcess", "free_port", "wait_until"]

T = TypeVar("T")

#: The console token every test runner is started with (``AUTOMATIONS_CONSOLE_TOKEN``), so that
#: ``health()`` can read ``/healthz``'s detail.
CONSOLE_TOKEN = "console-token-for-the-tests"

#: How long any single wait may take before the test fails (generous: a loaded 2-core box).
WAIT_S = 30.0


def wait_until(
    probe: Callable[[], T | None], what: str, timeout: float = WAIT_S, interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunnerProcess:
    """One ``automations run DIR`` service; ``start`` again after ``kill`` / ``stop`` restarts
    it on the same database and port."""

    directory: Path
    db: Path
    port: int
    env: dict[str, str]
    args: tuple[str, ...]
    logs_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> RunnerProcess:
        assert not self.running, "already running"
        self.starts += 1
        log = open(self.logs_dir / f"runner-{self.port}-{self.starts}.log", "wb")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "automations",
            "run",
            str(self.directory),
            "--db",
            str(self.db),
            "--port",
            str(self.port),
            *self.args,
        ]
        if not any(a.startswith("--ui-") for a in self.args):
            cmd.append("--no-ui")  # the console's default port is one per machine
        try:
            env = {"AUTOMATIONS_CONSOLE_TOKEN": CONSOLE_TOKEN, **self.env}
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=self.db.parent, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        wait_until(self._healthy, "the runner to answer GET /healthz with 200")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"the runner exited with {self.proc.returncode}:\n{self.log}")
        try:
            return self.client.get(self.url("/healthz"), timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> int:
        """SIGTERM, and the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the runner did not stop on SIGTERM:\n{self.log}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    @property
    def log(self) -> str:
        """Everything every start of this runner wrote to stderr (and stdout)."""
        return "".join(
            (self.logs_dir / f"runner-{self.port}-{n}.log").read_text("utf-8", "replace")
            for n in range(1, self.starts + 1)
        )

    # -- talking to it ------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def health(self) -> dict[str, Any]:
        """``/healthz``'s detail (read with the console token)."""
        answer = self.client.get(
            self.url("/healthz"), headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"}
        )
        body: dict[str, Any] = answer.json()["detail"]
        return body

    def summary(self) -> dict[str, Any]:
        """``/healthz`` as anyone sees it (no token)."""
        body: dict[str, Any] = self.client.get(self.url("/healthz")).json()
        return body

    def version(self, name: str) -> str | None:
        for recipe in self.health()["recipes"]:
            if recipe["name"] == name:
                return str(recipe["version"])
        return None

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        return self.client.post(self.url(path), content=body, headers=dict(headers))

    def cli(self, *args: str) -> str:
        """``automations ARGS --db DB`` against this runner's database; its standard output."""
        out = subprocess.run(
            [sys.executable, "-m", "automations", *args, "--db", str(self.db)],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=WAIT_S,
            text=True,
        )
        return out.stdout

    def runs(self, *extra: str) -> list[dict[str, Any]]:
        """``automations runs --format json`` (all of them, newest first)."""
        runs: list[dict[str, Any]] = json.loads(
            self.cli("runs", "--format", "json", "--limit", "100000", *extra)
        )
        return runs

    def show(self, run_id: str) -> dict[str, Any]:
        """``automations show RUN_ID`` (every step's request and response)."""
        run: dict[str, Any] = json.loads(self.cli("show", run_id, "--format", "json"))
        return run

    def status(self) -> dict[str, Any]:
        """``automations status --format json``: the backlog, as any process reads it."""
        backlog: dict[str, Any] = json.loads(self.cli("status", "--format", "json"))
        return backlog

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read-only query of the run database (for waiting; assertions use ``runs``)."""
        if not self.db.exists():
            return []
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10.0)
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []  # the schema is not there yet
        finally:
            db.close()

    def count_runs(self, recipe: str | None = None, *, finished: bool = False) -> int:
        where, params = [], []
        if recipe is not None:
            where.append("recipe = ?")
            params.append(recipe)
        if finished:
            where.append("status NOT IN ('pending', 'running')")
        sql = "SELECT count(*) FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.query(sql, tuple(params))
        return int(rows[0][0]) if rows else 0

    def unfinished(self) -> int:
        """Runs pending or running, and webhooks recorded by the intake process that the runner
        has not moved into ``runs`` yet (answered 202 a moment ago)."""
        waiting = waiting_in_inbox(self.db)  # first: a row moved meanwhile is then in runs
        rows = self.query("SELECT count(*) FROM runs WHERE status IN ('pending', 'running')")
        return (int(rows[0][0]) if rows else 0) + waiting

    def wait_runs(
        self, recipe: str | None, n: int, *, finished: bool = True, timeout: float = WAIT_S
    ) -> None:
        """Wait until ``recipe`` has at least ``n`` runs (finished ones, by default)."""
        wait_until(
            lambda: self.count_runs(recipe, finished=finished) >= n,
            f"{n} {'finished ' if finished else ''}run(s) of {recipe or 'any recipe'}",
            timeout=timeout,
        )

    def wait_idle(self, timeout: float = WAIT_S) -> None:
        wait_until(lambda: self.unfinished() == 0, "every run to finish", timeout=timeout)

    def wait_log(self, text: str, timeout: float = WAIT_S) -> None:
        wait_until(lambda: text in self.log, f"the log to say {text!r}", timeout=timeout)
