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

Times are per action (per run / 2); medians and 99th percentiles of per-run samples, and the
median of this thread's CPU time (which moves less when other processes share the machine). The
first line gives the time of ``sum(range(1000))`` as a yardstick for the machine's speed.
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
import timeit
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

from automations.connections import Connections, ConnectionSettings
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


Sample = tuple[float, float]


def clocks() -> Sample:
    """(wall, this thread's CPU) seconds: CPU time moves less when other processes share the
    machine."""
    return time.perf_counter(), time.thread_time()


def since(started: Sample) -> Sample:
    wall, cpu = clocks()
    return wall - started[0], cpu - started[1]


class TimedStore(SQLiteStore):
    """A SQLite store that adds up the time spent in the calls the executor makes: each method,
    and the BEGIN and COMMIT of each ``transaction()`` (not the executor's work inside one)."""

    spent: Sample = (0.0, 0.0)

    def add(self, started: Sample) -> None:
        wall, cpu = since(started)
        self.spent = (self.spent[0] + wall, self.spent[1] + cpu)

    def _timed(self, name: str, *args: Any, **kwargs: Any) -> Any:
        started = clocks()
        try:
            return getattr(super(), name)(*args, **kwargs)
        finally:
            self.add(started)

    def claim(self, run_id: str, recipe_hash: str, **fields: object) -> RunRecord | None:
        return self._timed("claim", run_id, recipe_hash, **fields)  # type: ignore[no-any-return]

    def update_run(self, run_id: str, **fields: object) -> None:
        self._timed("update_run", run_id, **fields)

    def put_step(self, step: StepRecord) -> None:
        self._timed("put_step", step)

    def get_run(self, run_id: str) -> RunRecord:
        return self._timed("get_run", run_id)  # type: ignore[no-any-return]

    def get_state(self, scope: str, key: str) -> str | None:
        return self._timed("get_state", scope, key)  # type: ignore[no-any-return]

    def transaction(self) -> AbstractContextManager[None]:
        return _TimedBlock(self, super().transaction())


class _TimedBlock(AbstractContextManager[None]):
    def __init__(self, store: TimedStore, block: AbstractContextManager[None]) -> None:
        self.store = store
        self.block = block

    def __enter__(self) -> None:
        started = clocks()
        try:
            self.block.__enter__()
        finally:
            self.store.add(started)

    def __exit__(self, *exc: Any) -> bool | None:
        started = clocks()
        try:
            return self.block.__exit__(*exc)
        finally:
            self.store.add(started)


def per_action_ms(samples: list[Sample]) -> tuple[float, float, float]:
    """(wall median, wall p99, CPU median) in ms per action, of per-run samples."""
    walls = sorted(s[0] for s in samples)
    p99 = walls[min(len(walls) - 1, int(0.99 * len(walls)))]
    scale = 1000.0 / ACTIONS_PER_RUN
    cpu = statistics.median(s[1] for s in samples)
    return statistics.median(walls) * scale, p99 * scale, cpu * scale


async def time_execute(
    folder: Path, recipe: Recipe, runs: int, *, timed_store: bool
) -> dict[str, list[Sample]]:
    path = folder / ("timed.db" if timed_store else "execute.db")
    store = (TimedStore if timed_store else SQLiteStore)(path)
    totals: list[Sample] = []
    audits: list[Sample] = []
    failed = 0
    try:
        async with connections(ENV) as conns:
            executor = Executor(store, conns, ENV, retry=RetryPolicy())
            for i in range(WARMUP + runs):
                run, _ = store.enqueue(new_run(recipe.name, TriggerKind.WEBHOOK, f"e{i}", event(i)))
                if isinstance(store, TimedStore):
                    store.spent = (0.0, 0.0)
                started = clocks()
                final = await executor.execute(run, recipe)
                elapsed = since(started)
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


def time_render(recipe: Recipe, runs: int) -> list[Sample]:
    samples: list[Sample] = []
    for i in range(WARMUP + runs):
        ev = event(i)
        started = clocks()
        row = row_for(recipe, ev)
        evaluate_condition(recipe, row)
        responses: dict[str, Any] = {}
        for index, action in enumerate(recipe.actions):
            render_action(recipe, action, index, row, ENV, responses, run_id="r")
            responses[action.id] = None
        if i >= WARMUP:
            samples.append(since(started))
    return samples


async def time_client(recipe: Recipe, runs: int) -> list[Sample]:
    row = row_for(recipe, event(1))
    reqs: list[OutboundRequest] = [
        render_action(recipe, action, index, row, ENV, {}, run_id="r")
        for index, action in enumerate(recipe.actions)
    ]
    policy = RetryPolicy()
    samples: list[Sample] = []
    async with connections(ENV) as conns:
        for i in range(WARMUP + runs):
            started = clocks()
            results: list[SendResult] = [await conns.send(req, policy) for req in reqs]
            if i >= WARMUP:
                samples.append(since(started))
            assert all(r.status < 300 for r in results)
    return samples


def show(label: str, figures: tuple[float, float, float]) -> None:
    print(f"  {label:34} {figures[0]:8.3f} {figures[1]:8.3f} {figures[2]:8.3f}")


def yardstick_us() -> float:
    """Microseconds for ``sum(range(1000))``, best of 5 x 2,000."""
    return 1e6 * min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000


async def main_async(runs: int) -> int:
    recipe = load_recipe()
    print(
        f"engine overhead, 2-step recipe (quo.create_contact + loops.update_contact), "
        f"{runs:,} runs after {WARMUP} warm-up, python {sys.version.split()[0]}, "
        f"sum(range(1000)) in {yardstick_us():.1f} us"
    )
    print(f"  {'ms per action (per run / 2)':34} {'median':>8} {'p99':>8} {'CPU med':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gc.collect()
        total = per_action_ms(
            (await time_execute(folder, recipe, runs, timed_store=False))["total"]
        )
        show("Executor.execute (SQLite file)", total)
        gc.collect()
        render = per_action_ms(time_render(recipe, runs))
        show("render only", render)
        gc.collect()
        audit = per_action_ms((await time_execute(folder, recipe, runs, timed_store=True))["audit"])
        show("audit writes only (inside execute)", audit)
        gc.collect()
        client = per_action_ms(await time_client(recipe, runs))
        show("client only (MockTransport)", client)
    rest = [total[i] - render[i] - audit[i] - client[i] for i in (0, 2)]
    print(f"  {'rest (redaction, describe, records)':34} {rest[0]:8.3f} {'':8} {rest[1]:8.3f}")
    print(
        "shares of the median (wall): "
        + ", ".join(
            f"{name} {part[0] / total[0]:.0%}"
            for name, part in (("render", render), ("audit", audit), ("client", client))
        )
        + f", rest {rest[0] / total[0]:.0%}"
    )
    ok = total[0] <= 0.5
    print(
        f"goal (median <= 0.5 ms per action): {'met' if ok else 'NOT met'} "
        f"({total[0] / 0.5:.2f} x the budget; CPU median {total[2]:.3f} ms)"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="timed runs (default 5000)")
    args = parser.parse_args()
    return asyncio.run(main_async(max(1, args.runs)))


if __name__ == "__main__":
    sys.exit(main())
