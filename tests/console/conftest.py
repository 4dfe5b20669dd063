"""Console fixtures: a real SQLite store seeded with runs, a host that stands in for the runner,
and ``starlette.testclient.TestClient`` over the console's application."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from automations.console import Gate, build_console
from automations.diagnostics import Diagnostic
from automations.execution.versions import remember_version
from automations.model import Recipe
from automations.recipes.compiler import load_recipe
from automations.records import RunRecord, RunStatus, StepRecord, StepStatus, TriggerKind
from automations.stores import SQLiteStore

T0 = 1_780_000_000.0
#: The console's own origin as the tests address it.
BASE = "http://127.0.0.1:8788"
ORIGIN = {"Origin": BASE}
TOKEN = "console-ui-token-for-the-tests"
PHONE = "+15555550123"
EMAIL = "Ada.Lovelace@example.com"
XSS = '<script>alert("x")</script>'

TEXTS = """\
name: texts
trigger:
  webhook:
    path: /hooks/texts
    verify: {scheme: token, header: X-Token, secret: "${TEXTS_TOKEN}"}
only_run_if: "phone != null"
actions:
  - id: sms
    quo.send_sms:
      from: "+15555550199"
      to: [/phone]
      content: "Hello {/name}"
  - id: event
    loops.send_event:
      email: /email
      eventName: texted
"""


@dataclass
class FakeHost:
    """What the runner would tell the console; ``submitted`` records the replays handed over."""

    directory: Path
    loaded: dict[str, Recipe] = field(default_factory=dict)
    lint: dict[str, Sequence[Diagnostic]] = field(default_factory=dict)
    view: dict[str, Any] = field(default_factory=lambda: {"connections": {}, "lanes": {}})
    submitted: list[RunRecord] = field(default_factory=list)
    rate_limited: dict[str, float] = field(default_factory=dict)
    dry_run: bool = False

    def recipes(self) -> Mapping[str, Recipe]:
        return self.loaded

    def diagnostics(self) -> Mapping[str, Sequence[Diagnostic]]:
        return self.lint

    def dispatch(self) -> Mapping[str, Any]:
        return self.view

    def submit(self, run: RunRecord) -> None:
        self.submitted.append(run)

    def throttled(self) -> Mapping[str, float]:
        return self.rate_limited


def sms_step(run_id: str, status: StepStatus, **fields: Any) -> StepRecord:
    return StepRecord(
        run_id,
        0,
        "sms",
        "quo.send_sms",
        status,
        request={
            "method": "POST",
            "url": "https://api.openphone.com/v1/messages",
            "headers": {"Authorization": "${QUO_API_KEY}"},
            "body": {"to": [PHONE], "from": "+15555550199", "content": "Hello Ada"},
        },
        attempts=1,
        duration_ms=84.0,
        started_at=T0 + 1,
        finished_at=T0 + 1.1,
        **fields,
    )


def run(
    run_id: str,
    offset: float,
    status: RunStatus,
    *,
    recipe: str = "texts",
    key: str | None = None,
    event: Any = None,
    steps: tuple[StepRecord, ...] = (),
    **fields: Any,
) -> RunRecord:
    return RunRecord(
        id=run_id,
        recipe=recipe,
        trigger=TriggerKind.WEBHOOK,
        event_key=key or f"evt-{run_id}",
        event=event if event is not None else {"phone": PHONE, "email": EMAIL, "name": "Ada"},
        created_at=T0 + offset,
        status=status,
        finished_at=None if not status.is_final else T0 + offset + 0.5,
        started_at=T0 + offset + 0.1,
        steps=steps,
        **fields,
    )


def seed(store: SQLiteStore, recipe: Recipe | None = None) -> None:
    """Eight runs, oldest first: one of each kind an operator meets."""
    hash_ = recipe.content_hash if recipe else None
    runs = [
        run("ok", 0, RunStatus.SUCCEEDED, key=PHONE, recipe_hash=hash_, condition=True,
            steps=(sms_step("ok", StepStatus.SUCCEEDED, http_status=202,
                            response_body={"data": {"id": "msg_1"}}),)),
        run("failed", 1, RunStatus.FAILED, key=EMAIL, recipe_hash=hash_, condition=True,
            error="step sms failed: HTTP 400 invalid number +15555550123\nsecond line",
            steps=(sms_step("failed", StepStatus.FAILED, http_status=400,
                            error="HTTP 400 invalid number +15555550123"),)),
        run("unknown", 2, RunStatus.UNKNOWN, recipe_hash=hash_, condition=True,
            error="sms may have been sent",
            steps=(sms_step("unknown", StepStatus.UNKNOWN, error="HTTP 503: may have been sent"),)),
        run("skipped", 3, RunStatus.SKIPPED, condition=False),
        run("xss", 4, RunStatus.FAILED, key=XSS, event={"name": XSS, "phone": None},
            error=f"bad row {XSS}"),
        run("pending", 5, RunStatus.PENDING, recipe="welcome", key="bob@example.com"),
        run("held1", 6, RunStatus.HELD, recipe="flood"),
        run("held2", 7, RunStatus.HELD, recipe="flood"),
    ]  # fmt: skip
    for r in runs:
        store.enqueue(r)
        for s in r.steps:
            store.put_step(s)


@pytest.fixture
def recipes_dir(tmp_path: Path) -> Path:
    d = tmp_path / "recipes"
    d.mkdir()
    (d / "texts.yaml").write_text(textwrap.dedent(TEXTS))
    return d


@pytest.fixture
def texts(recipes_dir: Path) -> Recipe:
    loaded = load_recipe(recipes_dir / "texts.yaml", {})
    assert loaded.recipe is not None, loaded.diagnostics
    return loaded.recipe


@pytest.fixture
def store(tmp_path: Path, texts: Recipe) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "runs.db")
    remember_version(s, texts)
    seed(s, texts)
    yield s
    s.close()


@pytest.fixture
def host(recipes_dir: Path, texts: Recipe) -> FakeHost:
    return FakeHost(recipes_dir, {"texts": texts})


Client = Callable[..., TestClient]


@pytest.fixture
def console(store: SQLiteStore, host: FakeHost) -> Iterator[Client]:
    """``console(token=None, **options)``: a client of a console over the seeded store."""
    made: list[TestClient] = []

    def make(token: str | None = None, **options: Any) -> TestClient:
        app = build_console(store, host, Gate(token), **options)
        client = TestClient(app, base_url=BASE, follow_redirects=False)
        client.__enter__()
        made.append(client)
        return client

    yield make
    for c in made:
        c.__exit__(None, None, None)
        c.app.state.console.close()  # type: ignore[attr-defined]


@pytest.fixture
def client(console: Client) -> TestClient:
    """An open console (no token: loopback)."""
    return console()
