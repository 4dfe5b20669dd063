"""Acceptance fixtures: the real ``automations run`` as a subprocess, fake Quo and Loops on
loopback, signed webhooks, and polling helpers.

Everything here talks to the runner the way a user does: over HTTP, through files in the recipe
directory, with signals, and through ``automations runs --format json``. The run database is read
directly (read-only queries) only to *wait* for something; assertions use the CLI's JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from automations.triggers.verify import sign_openphone, sign_standard
from tests.fakes import LoopbackServer
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

T = TypeVar("T")

QUO_KEY = "quo-test-key"
LOOPS_KEY = "loops-test-key"
QUO_FROM = "+15555550199"
#: Standard Webhooks secret (``whsec_`` + base64) and Quo's legacy signing secret (base64).
HOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci1hY2NlcHRhbmNlLXRlc3RzLTAx"
QUO_HOOK_SECRET = "cXVvLXNpZ25pbmctc2VjcmV0LWZvci10ZXN0cw=="
#: Variables a developer's shell might hold that would change what the runner talks to.
_SCRUBBED = (
    "QUO_API_KEY",
    "MATON_API_KEY",
    "LOOPS_API_KEY",
    "QUO_BASE_URL",
    "MATON_BASE_URL",
    "LOOPS_BASE_URL",
    "MATON_CONNECTION",
    "AUTOMATIONS_QUO_VIA",
    "AUTOMATIONS_DB",
    "QUO_FROM",
    "QUO_RATE_LIMIT",
    "LOOPS_RATE_LIMIT",
)
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


def write_recipe(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), "utf-8")
    return path


def append(path: Path, text: str) -> None:
    """Append ``text`` the way an exporter does: one write, flushed."""
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(text)


# -- webhooks -----------------------------------------------------------------------------------


def standard_headers(
    body: bytes, msg_id: str | None = None, *, secret: str = HOOK_SECRET, ts: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if ts is None else ts
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def openphone_headers(body: bytes, *, secret: str = QUO_HOOK_SECRET) -> dict[str, str]:
    ts_ms = int(time.time() * 1000)
    return {
        "openphone-signature": sign_openphone(secret, ts_ms, body),
        "content-type": "application/json",
    }


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# -- fakes --------------------------------------------------------------------------------------


class _Latency:
    """Answers each request ``latency`` seconds after the fake processed it (and only once
    ``gate`` is open), so a runner killed meanwhile has sent a request whose outcome it never
    learns. The loopback app calls the handler synchronously, so the wait holds that fake's
    requests in line: fine at 10 requests/s."""

    latency: float = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()

    def handler(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handler(request)  # type: ignore[misc, no-any-return]
        finally:
            if self.latency:
                time.sleep(self.latency)
            self.gate.wait(WAIT_S)


class SlowQuo(_Latency, QuoFake):
    pass


class SlowLoops(_Latency, LoopsFake):
    pass


@dataclass
class Fakes:
    quo: SlowQuo
    loops: SlowLoops
    quo_url: str
    loops_url: str

    def env(self, *, keys: bool = True) -> dict[str, str]:
        out = {"QUO_BASE_URL": self.quo_url, "LOOPS_BASE_URL": self.loops_url}
        if keys:
            out |= {"QUO_API_KEY": QUO_KEY, "LOOPS_API_KEY": LOOPS_KEY}
        return out

    def set_latency(self, seconds: float) -> None:
        self.quo.latency = seconds
        self.loops.latency = seconds

    def loops_events(self) -> list[dict[str, Any]]:
        """Every ``POST /v1/events/send`` received (accepted, refused, 409 alike)."""
        return [
            {"body": r.body, "key": r.headers.get("idempotency-key"), "outcome": r.outcome}
            for r in list(self.loops.received)
            if r.method == "POST" and r.path.endswith("/v1/events/send")
        ]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    quo, loops = SlowQuo([QUO_KEY]), SlowLoops([LOOPS_KEY])
    with LoopbackServer(quo) as quo_url, LoopbackServer(loops) as loops_url:
        try:
            yield Fakes(quo, loops, quo_url, loops_url)
        finally:
            quo.gate.set()
            loops.gate.set()


# -- the runner ---------------------------------------------------------------------------------


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
        log = open(self.logs_dir / f"runner-{self.starts}.log", "wb")  # noqa: SIM115
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
        try:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=self.db.parent, stdout=log, stderr=subprocess.STDOUT
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
            (self.logs_dir / f"runner-{n}.log").read_text("utf-8", "replace")
            for n in range(1, self.starts + 1)
        )

    # -- talking to it ------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(self.url("/healthz")).json()
        return body

    def version(self, name: str) -> str | None:
        for recipe in self.health()["recipes"]:
            if recipe["name"] == name:
                return str(recipe["version"])
        return None

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        return self.client.post(self.url(path), content=body, headers=dict(headers))

    def runs(self, *extra: str) -> list[dict[str, Any]]:
        """``automations runs --format json`` (all of them, newest first)."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "automations",
                "runs",
                "--db",
                str(self.db),
                "--format",
                "json",
                "--limit",
                "100000",
                *extra,
            ],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=WAIT_S,
        )
        runs: list[dict[str, Any]] = json.loads(out.stdout)
        return runs

    def show(self, run_id: str) -> dict[str, Any]:
        """``automations show RUN_ID`` (every step's request and response)."""
        out = subprocess.run(
            [sys.executable, "-m", "automations", "show", run_id, "--db", str(self.db)],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=WAIT_S,
        )
        run: dict[str, Any] = json.loads(out.stdout)
        return run

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
        rows = self.query("SELECT count(*) FROM runs WHERE status IN ('pending', 'running')")
        return int(rows[0][0]) if rows else 0

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


StartRunner = Callable[..., RunnerProcess]


@pytest.fixture
def recipes_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "recipes"
    (directory / "data").mkdir(parents=True)
    return directory


@pytest.fixture
def start_runner(tmp_path: Path, fakes: Fakes) -> Iterator[StartRunner]:
    """``start_runner(directory, *args, keys=True, env={NAME: value or None})``: a started
    runner on a fresh port with ``--db tmp/automations.db``, every recipe loaded without
    errors. At teardown a runner still running gets SIGTERM and must exit 0."""
    started: list[RunnerProcess] = []

    def start(
        directory: Path, *args: str, keys: bool = True, env: Mapping[str, str | None] | None = None
    ) -> RunnerProcess:
        full = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        full |= fakes.env(keys=keys) | {
            "QUO_FROM": QUO_FROM,
            "HOOK_SECRET": HOOK_SECRET,
            "QUO_HOOK_SECRET": QUO_HOOK_SECRET,
        }
        for name, value in (env or {}).items():  # None: unset
            if value is None:
                full.pop(name, None)
            else:
                full[name] = value
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        runner = RunnerProcess(
            directory, tmp_path / "automations.db", free_port(), full, tuple(args), logs
        )
        started.append(runner)
        runner.start()
        errors = runner.health()["errors"]
        assert errors == {}, f"recipes did not load: {errors}\n{runner.log}"
        return runner

    yield start
    problems = []
    for runner in started:
        if runner.running:
            code = runner.stop()
            if code != 0:
                problems.append(f"runner exited {code} on SIGTERM:\n{runner.log}")
        runner.client.close()
    if problems:
        pytest.fail("\n".join(problems))


@contextlib.contextmanager
def background(target: Callable[[threading.Event], None]) -> Iterator[threading.Event]:
    """Run ``target(stop)`` in a thread until the block ends."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target(stop)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(WAIT_S)
    if errors:
        raise errors[0]
