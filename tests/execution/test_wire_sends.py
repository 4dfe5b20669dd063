"""Runs over real loopback HTTP, through the transport the runner uses (``Http11Transport``),
into a real SQLite file: every step is one request at the fake, a 429 is still tried again, and a
connection lost after the request left leaves the step ``unknown``, never sent twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from automations.connections import Connections, ConnectionSettings
from automations.execution.executor import Executor, new_run
from automations.recipes.compiler import load_recipe_text
from automations.records import RunRecord, RunStatus, StepStatus, TriggerKind
from automations.retry import RetryPolicy
from automations.stores import SQLiteStore
from automations.stores.thread import StoreThread
from tests.fakes import serve_on_loopback
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake
from tests.fakes.wire import CLOSE, WireServer

pytestmark = pytest.mark.integration

SIGNUP = """
name: signup
trigger:
  webhook:
    path: /hooks/signup
    verify: {scheme: token, header: X-Token, secret: "${HOOK_TOKEN}"}
actions:
  - id: contact
    quo.create_contact:
      defaultFields:
        firstName: /firstName
        emails: [{name: work, value: /email}]
  - id: loops
    loops.update_contact: {email: /email, firstName: /firstName}
"""
EVENT = {"email": "ada@example.com", "firstName": "Ada"}


def run_signups(
    tmp_path: Path, quo_url: str, loops_url: str, count: int = 1
) -> tuple[list[RunRecord], SQLiteStore]:
    env = {
        "QUO_API_KEY": "quo-test-key",
        "LOOPS_API_KEY": "loops-test-key",
        "QUO_BASE_URL": quo_url,
        "LOOPS_BASE_URL": loops_url,
        "HOOK_TOKEN": "hook-token-0123456789abcdef",
    }
    loaded = load_recipe_text(SIGNUP, "signup.yaml", base_dir=tmp_path, env=env)
    assert loaded.recipe is not None, loaded.diagnostics
    store = SQLiteStore(tmp_path / "runs.db")
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_total=5.0)

    async def go() -> list[RunRecord]:
        io = StoreThread("store-test")
        try:
            async with Connections(ConnectionSettings.from_env(env)) as conns:
                executor = Executor(store, conns, env, retry=retry, io=io)
                finals = []
                for i in range(count):
                    run = new_run("signup", TriggerKind.WEBHOOK, f"msg_{i}", EVENT)
                    store.enqueue(run)
                    finals.append(await executor.execute(run, loaded.recipe))  # type: ignore[arg-type]
                return finals
        finally:
            await asyncio.to_thread(io.close)

    return asyncio.run(go()), store


def steps(run: RunRecord) -> list[tuple[str, StepStatus, int | None]]:
    return [(s.step_id, s.status, s.attempts) for s in run.steps]


def with_fakes(tmp_path: Path, quo: QuoFake, loops: LoopsFake, count: int) -> Any:
    async def serve() -> tuple[list[RunRecord], SQLiteStore]:
        async with serve_on_loopback(quo) as quo_url, serve_on_loopback(loops) as loops_url:
            return await asyncio.to_thread(run_signups, tmp_path, quo_url, loops_url, count)

    return asyncio.run(serve())


def test_each_step_is_one_request(tmp_path: Path) -> None:
    quo, loops = QuoFake(), LoopsFake()
    finals, store = with_fakes(tmp_path, quo, loops, 3)
    assert [f.status for f in finals] == [RunStatus.SUCCEEDED] * 3
    assert [steps(f) for f in finals] == [
        [("contact", StepStatus.SUCCEEDED, 1), ("loops", StepStatus.SUCCEEDED, 1)]
    ] * 3
    assert (quo.count, loops.count, len(quo.contacts)) == (3, 3, 3)
    assert [steps(store.get_run(f.id)) for f in finals] == [steps(f) for f in finals]
    store.close()


def test_a_429_is_tried_again_and_sent_once(tmp_path: Path) -> None:
    quo, loops = QuoFake(), LoopsFake()
    quo.script(429)
    finals, store = with_fakes(tmp_path, quo, loops, 1)
    assert steps(finals[0]) == [
        ("contact", StepStatus.SUCCEEDED, 2),
        ("loops", StepStatus.SUCCEEDED, 1),
    ]
    assert [r.outcome for r in quo.received] == [429, 201]
    assert (len(quo.contacts), loops.count) == (1, 1)
    store.close()


def test_a_connection_lost_after_the_request_left_is_unknown(tmp_path: Path) -> None:
    loops = LoopsFake()

    async def serve() -> tuple[list[RunRecord], SQLiteStore, int, int]:
        async with WireServer([CLOSE]) as quo, serve_on_loopback(loops) as loops_url:
            finals, store = await asyncio.to_thread(run_signups, tmp_path, quo.url, loops_url)
            return finals, store, len(quo.requests), quo.connections

    finals, store, quo_requests, quo_connections = asyncio.run(serve())
    final = finals[0]
    assert final.status is RunStatus.UNKNOWN
    assert [(s.step_id, s.status) for s in final.steps] == [("contact", StepStatus.UNKNOWN)]
    assert "RemoteProtocolError" in (final.steps[0].error or "")
    assert (quo_requests, quo_connections, loops.count) == (1, 1, 0)
    assert store.get_run(final.id).steps[0].status is StepStatus.UNKNOWN
    store.close()
