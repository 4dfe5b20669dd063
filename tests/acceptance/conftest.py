"""Acceptance fixtures: the real ``automations run`` as a subprocess (``start_runner``, see
``runner_process``), fake Quo and Loops on loopback (``fakes``), recipe files, table appends
and signed webhooks."""

from __future__ import annotations

import contextlib
import json
import os
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.runner_process import WAIT_S, RunnerProcess, free_port
from tests.fakes import LoopbackServer, webhooks
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

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
    return webhooks.standard_headers(body, msg_id, secret=secret, ts=ts)


def openphone_headers(body: bytes, *, secret: str = QUO_HOOK_SECRET) -> dict[str, str]:
    return webhooks.openphone_headers(body, secret=secret)


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def webhook_recipe(event: str, path: str = "/hooks/a", *, name: str = "hook") -> str:
    """A recipe run by a Standard Webhooks delivery to ``path`` signed with HOOK_SECRET: one Loops
    event named ``event`` to the body's ``email``."""
    return f"""
name: {name}
trigger:
  webhook:
    path: {path}
    verify: {{scheme: standard-webhooks, secret: "${{HOOK_SECRET}}"}}
actions:
  - loops.send_event: {{email: /email, eventName: {event}}}
"""


#: The webhook most tests post to: ``/hooks/loops`` runs recipe ``loops-hook``.
LOOPS_HOOK = webhook_recipe("hooked", "/hooks/loops", name="loops-hook")


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

StartRunner = Callable[..., RunnerProcess]


def runner_env(
    fakes: Fakes, *, keys: bool = True, env: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """A runner's environment: this one without variables that would change what it talks to,
    the fakes' URLs and keys, the secrets of the test recipes, then ``env`` (None: unset)."""
    full = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    full |= fakes.env(keys=keys) | {
        "QUO_FROM": QUO_FROM,
        "HOOK_SECRET": HOOK_SECRET,
        "QUO_HOOK_SECRET": QUO_HOOK_SECRET,
    }
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return full


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
        full = runner_env(fakes, keys=keys, env=env)
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
