"""The executor groups a run's writes into one commit per stretch between requests: what another
process sees in the SQLite file while a request is on its way."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from pathlib import Path

import httpx
import pytest

from automations.connections import Connections, ConnectionSettings
from automations.execution.executor import Executor, new_run
from automations.model import Recipe
from automations.recipes.compiler import load_recipe_text
from automations.records import RunRecord, RunStatus, TriggerKind
from automations.stores import SQLiteStore
from tests.execution.conftest import Crash

ENV = {"QUO_API_KEY": "quo-test-key", "LOOPS_API_KEY": "loops-test-key"}
RECIPE = """
name: signup
trigger:
  webhook: {path: /hooks/signup, verify: {scheme: none}}
actions:
  - id: contact
    quo.create_contact:
      defaultFields: {firstName: /name, phoneNumbers: [{name: mobile, value: /phone}]}
  - id: loops
    loops.update_contact: {email: /email, firstName: /name}
"""
EVENT = {"name": "Ada", "phone": "+15555550100", "email": "ada@example.com"}
Committed = tuple[str, list[tuple[int, str]]]
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


@pytest.fixture
def recipe(tmp_path: Path) -> Recipe:
    result = load_recipe_text(RECIPE, "signup.yaml", base_dir=tmp_path, env=ENV)
    assert result.recipe is not None, result.diagnostics
    return result.recipe


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "runs.db")


def committed(store: SQLiteStore, run_id: str) -> Committed:
    """The run's status and steps as another connection (another process) sees them."""
    other = sqlite3.connect(store.path)
    try:
        row = other.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        steps = other.execute(
            "SELECT idx, status FROM step_log WHERE run_id = ? ORDER BY idx", (run_id,)
        ).fetchall()
    finally:
        other.close()
    return ("absent" if row is None else row[0]), steps


def vendors(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/contacts":
        return httpx.Response(201, json={"data": {"id": "c1"}})
    return httpx.Response(200, json={"success": True, "id": "l1"})


def execute(store: SQLiteStore, recipe: Recipe, run: RunRecord, handler: Handler) -> RunRecord:
    async def go() -> RunRecord:
        transport = httpx.MockTransport(handler)
        async with Connections(ConnectionSettings.from_env(ENV), transport=transport) as conns:
            return await Executor(store, conns, ENV).execute(run, recipe)

    return asyncio.run(go())


def enqueue(store: SQLiteStore, key: str = "e1") -> RunRecord:
    return store.enqueue(new_run("signup", TriggerKind.WEBHOOK, key, EVENT))[0]


def test_each_request_leaves_only_after_its_sending_write_is_committed(
    store: SQLiteStore, recipe: Recipe
) -> None:
    run = enqueue(store)
    seen: list[tuple[str, Committed]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, committed(store, run.id)))
        return vendors(request)

    final = execute(store, recipe, run, handler)
    assert final.status is RunStatus.SUCCEEDED
    # the contact (no idempotency key) is marked "sending" first; the PUT is resend-safe and
    # needs no mark, but the outcome of the step before it is durable when it leaves
    assert seen == [
        ("/v1/contacts", ("running", [(0, "sending")])),
        ("/api/v1/contacts/update", ("running", [(0, "succeeded")])),
    ]
    assert committed(store, run.id) == ("succeeded", [(0, "succeeded"), (1, "succeeded")])


def test_a_crash_during_a_send_loses_no_earlier_write(store: SQLiteStore, recipe: Recipe) -> None:
    run = enqueue(store)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/contacts/update":
            raise Crash
        return vendors(request)

    with pytest.raises(Crash):
        execute(store, recipe, run, handler)
    # step 1 (a resend-safe PUT) has no "sending" mark: on resume it is simply sent again
    assert committed(store, run.id) == ("running", [(0, "succeeded")])


def test_no_transaction_stays_open_while_a_request_is_on_its_way(
    store: SQLiteStore, recipe: Recipe
) -> None:
    run = enqueue(store)
    others: list[Committed] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        # another coroutine records a run meanwhile (a webhook's inbox entry): it must be
        # durable when enqueue returns, not held in a transaction the executor left open
        await asyncio.sleep(0)
        other = enqueue(store, f"other-{request.url.path}")
        others.append(committed(store, other.id))
        return vendors(request)

    assert execute(store, recipe, run, handler).status is RunStatus.SUCCEEDED
    assert others == [("pending", []), ("pending", [])]
