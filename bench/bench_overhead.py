"""Engine overhead per action: what the executor costs on top of the network.

    python bench/bench_overhead.py [--runs 5000]

``Executor.execute`` runs a two-step recipe (``quo.create_contact``, then
``loops.update_contact``) for webhook-shaped events, recording into a SQLite file in a temporary
folder, against an ``httpx.MockTransport`` that answers at once with each vendor's success body
(no spec validation, no pacing: the rate limits are set to a million per second). The time of
one ``execute`` divided by its two actions is the engine's overhead per action; the goal is a
median of at most 0.5 ms.

Then the same work split by part, each timed on its own over the same number of runs:

- render: ``row_for``, ``evaluate_condition`` and ``render_action`` (templates, phone numbers,
  the vendor's request schema);
- audit: every store call the executor makes for a run (timed inside a real ``execute`` through a
  store subclass that adds up the time spent in its methods and transactions);
- client: ``Connections.send`` of the two rendered requests (limiter, httpx, MockTransport, body
  parsing);
- the rest (redaction, describing requests for the audit, records) is the difference.

Times are per action (per run / 2); medians and 99th percentiles of per-run samples.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx

from automations.connections import ConnectionSettings, Connections
from automations.execution.executor import Executor, new_run
from automations.execution.render import render_action
from automations.execution.rows import evaluate_condition, row_for
from automations.model import Recipe
from automations.outbound import OutboundRequest, SendResult
from automations.recipes.compiler import load_recipe_text
from automations.records import RunRecord, RunStatus, StepRecord, TriggerKind
from automations.retry import RetryPolicy
from automations.stores import SQLiteStore

ACTIONS_PER_RUN = 2
WARMUP = 200

RECIPE = """
name: signup
trigger:
  webhook:
    path: /hooks/signup
    verify: {scheme: standard-webhooks, secret: "${SIGNUP_SECRET}"}
actions:
  - id: contact
    quo.create_contact:
      defaultFields:
        firstName: /firstName
        lastName: /lastName
        emails: [{name: work, value: /email}]
        phoneNumbers: [{name: mobile, value: /phone}]
  - id: loops
    loops.update_contact:
      email: /email
      firstName: /firstName
      lastName: /lastName
      userGroup: /plan
"""

ENV = {
    "QUO_API_KEY": "quo-bench-key-0123456789",
    "LOOPS_API_KEY": "loops-bench-key-0123456789",
    "SIGNUP_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "QUO_RATE_LIMIT": "1000000",
    "LOOPS_RATE_LIMIT": "1000000",
    "AUTOMATIONS_RATE_GUARD_MS": "0",
}

_JSON = {"content-type": "application/json"}
_CONTACT = json.dumps(
    {
        "data": {
            "id": "664d0db69fcac7cf2e6ec",
            "externalId": None,
            "source": "public-api",
            "sourceUrl": None,
            "defaultFields": {
                "company": None,
                "emails": [{"name": "work", "value": "ada@example.com", "id": "em0"}],
                "firstName": "Ada",
                "lastName": "Lovelace",
                "phoneNumbers": [{"name": "mobile", "value": "+15555550100", "id": "ph0"}],
                "role": None,
            },
            "customFields": [],
            "createdAt": "2025-06-01T00:00:00.000Z",
            "updatedAt": "2025-06-01T00:00:00.000Z",
            "createdByUserId": "US0000000001",
        }
    }
).encode()
_LOOPS = b'{"success":true,"id":"cm1x2y3z4a5b6c7d8e9f0g1h2"}'


def instant_vendors(request: httpx.Request) -> httpx.Response:
    """Each vendor's success answer, at once (no validation, no rate limit)."""
    if request.url.path == "/v1/contacts":
        return httpx.Response(201, content=_CONTACT, headers=_JSON)
    return httpx.Response(200, content=_LOOPS, headers=_JSON)


def load_recipe() -> Recipe:
    result = load_recipe_text(RECIPE, "signup.yaml", base_dir=Path("."), env=ENV)
    assert result.recipe is not None, result.diagnostics
    return result.recipe


def event(i: int) -> dict[str, Any]:
    return {
        "email": f"user{i}@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phone": f"+1555{i % 10_000_000:07d}",
        "plan": "pro",
    }


def connections(env: dict[str, str]) -> Connections:
    return Connections(
        ConnectionSettings.from_env(env), transport=httpx.MockTransport(instant_vendors)
    )


class TimedStore(SQLiteStore):
    """A SQLite store that adds up the time spent in the calls the executor makes."""

    spent = 0.0
    _timing_depth = 0

    def _timed(self, name: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return getattr(super(), name)(*args, **kwargs)
        finally:
            if not self._timing_depth:
                self.spent += time.perf_counter() - started

    def claim(self, run_id: str, recipe_hash: str) -> RunRecord | None:
        return self._timed("claim", run_id, recipe_hash)  # type: ignore[no-any-return]

    def update_run(self, run_id: str, **fields: object) -> None:
        self._timed("update_run", run_id, **fields)

    def put_step(self, step: StepRecord) -> None:
        self._timed("put_step", step)

    def get_run(self, run_id: str) -> RunRecord:
        return self._timed("get_run", run_id)  # type: ignore[no-any-return]

    def get_state(self, scope: str, key: str) -> str | None:
        return self._timed("get_state", scope, key)  # type: ignore[no-any-return]

    def transaction(self) -> AbstractContextManager[None]:
        return self._timed_transaction()

    @contextmanager
    def _timed_transaction(self) -> Iterator[None]:
        started = time.perf_counter()
        outer = self._timing_depth == 0
        self._timing_depth += 1
        try:
            with super().transaction():
                yield
        finally:
            self._timing_depth -= 1
            if outer:
                self.spent += time.perf_counter() - started


def per_action_ms(samples: list[float]) -> tuple[float, float]:
    """(median, p99) in ms per action of per-run samples in seconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    scale = 1000.0 / ACTIONS_PER_RUN
    return statistics.median(ordered) * scale, p99 * scale


async def time_execute(folder: Path, recipe: Recipe, runs: int, *, timed_store: bool) -> dict[str, Any]:
    path = folder / ("timed.db" if timed_store else "execute.db")
    store = (TimedStore if timed_store else SQLiteStore)(path)
    totals: list[float] = []
    audits: list[float] = []
    failed = 0
    try:
        async with connections(ENV) as conns:
            executor = Executor(store, conns, ENV, retry=RetryPolicy())
            for i in range(WARMUP + runs):
                run, _ = store.enqueue(new_run(recipe.name, TriggerKind.WEBHOOK, f"e{i}", event(i)))
                if isinstance(store, TimedStore):
                    store.spent = 0.0
                started = time.perf_counter()
                final = await executor.execute(run, recipe)
                elapsed = time.perf_counter() - started
                failed += final.status is not RunStatus.SUCCEEDED
                if i >= WARMUP:
                    totals.append(elapsed)
                    if isinstance(store, TimedStore):
                        audits.append(store.spent)
    finally:
        store.close()
    if failed:
        raise SystemExit(f"{failed} runs did not succeed: the bench is broken")
    return {"total": totals, "audit": audits}


def time_render(recipe: Recipe, runs: int) -> list[float]:
    samples: list[float] = []
    for i in range(WARMUP + runs):
        ev = event(i)
        started = time.perf_counter()
        row = row_for(recipe, ev)
        evaluate_condition(recipe, row)
        responses: dict[str, Any] = {}
        for index, action in enumerate(recipe.actions):
            render_action(recipe, action, index, row, ENV, responses, run_id="r")
            responses[action.id] = None
        if i >= WARMUP:
            samples.append(time.perf_counter() - started)
    return samples


async def time_client(recipe: Recipe, runs: int) -> list[float]:
    row = row_for(recipe, event(1))
    reqs: list[OutboundRequest] = [
        render_action(recipe, action, index, row, ENV, {}, run_id="r")
        for index, action in enumerate(recipe.actions)
    ]
    policy = RetryPolicy()
    samples: list[float] = []
    async with connections(ENV) as conns:
        for i in range(WARMUP + runs):
            started = time.perf_counter()
            results: list[SendResult] = [await conns.send(req, policy) for req in reqs]
            if i >= WARMUP:
                samples.append(time.perf_counter() - started)
            assert all(r.status < 300 for r in results)
    return samples


async def main_async(runs: int) -> int:
    recipe = load_recipe()
    print(f"engine overhead, 2-step recipe (quo.create_contact + loops.update_contact), "
          f"{runs:,} runs after {WARMUP} warm-up, python {sys.version.split()[0]}")
    print("ms per action (per run / 2):        median      p99")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gc.collect()
        plain = await time_execute(folder, recipe, runs, timed_store=False)
        total_med, total_p99 = per_action_ms(plain["total"])
        print(f"  Executor.execute (SQLite file)  {total_med:8.3f} {total_p99:8.3f}")
        gc.collect()
        render_med, render_p99 = per_action_ms(time_render(recipe, runs))
        print(f"  render only                      {render_med:8.3f} {render_p99:8.3f}")
        timed = await time_execute(folder, recipe, runs, timed_store=True)
        audit_med, audit_p99 = per_action_ms(timed["audit"])
        print(f"  audit writes only (in execute)   {audit_med:8.3f} {audit_p99:8.3f}")
        gc.collect()
        client_med, client_p99 = per_action_ms(await time_client(recipe, runs))
        print(f"  client only (MockTransport)      {client_med:8.3f} {client_p99:8.3f}")
    rest = total_med - render_med - audit_med - client_med
    print(f"  rest (redaction, describe, records) ~{rest:7.3f}  (median difference)")
    print(
        f"shares of the median: render {render_med / total_med:.0%}, audit "
        f"{audit_med / total_med:.0%}, client {client_med / total_med:.0%}, rest "
        f"{rest / total_med:.0%}"
    )
    ok = total_med <= 0.5
    print(f"goal (median <= 0.5 ms per action): {'met' if ok else 'NOT met'} "
          f"({total_med / 0.5:.2f} x the budget)")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="timed runs (default 5000)")
    args = parser.parse_args()
    return asyncio.run(main_async(max(1, args.runs)))


if __name__ == "__main__":
    sys.exit(main())
