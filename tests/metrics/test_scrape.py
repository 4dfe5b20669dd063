"""``GET /metrics`` over HTTP against a real runner (a SQLite file, the Loops fake on loopback):
the exposition parsed with prometheus_client's own parser, exact values after known runs, no
secret in it, and who may read it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route

from automations.connections import Connections, ConnectionSettings
from automations.metrics import metrics_endpoint
from automations.runner.app import build_app
from automations.runner.service import Runner, RunnerOptions
from automations.stores import SQLiteStore
from tests.fakes import serve_on_loopback
from tests.fakes.loops import LoopsFake

pytestmark = pytest.mark.integration

LOOPS_KEY = "loops-test-key"
HOOK_TOKEN = "hook-token-3f9a1c77e2"
CONSOLE_TOKEN = "console-token-8b2d5e01"
RECIPE = """
name: x
trigger:
  webhook:
    path: /hooks/x
    verify: {scheme: token, secret: "${X_TOKEN}", header: X-Token}
actions:
  - loops.send_event: {email: /email, eventName: signup}
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def with_runner(
    tmp_path: Path,
    use: Callable[[Runner, httpx.AsyncClient, Any], Awaitable[None]],
    fake: LoopsFake,
) -> None:
    (tmp_path / "recipes").mkdir(exist_ok=True)
    (tmp_path / "recipes" / "x.yaml").write_text(RECIPE)
    async with serve_on_loopback(fake) as base_url:
        env = {"LOOPS_API_KEY": LOOPS_KEY, "LOOPS_BASE_URL": base_url, "X_TOKEN": HOOK_TOKEN}
        store = SQLiteStore(tmp_path / "runs.db")
        async with Connections(ConnectionSettings.from_env(env)) as conns:
            runner = Runner(tmp_path / "recipes", store, conns, env, RunnerOptions())
            await runner.start()
            hooks = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=build_app(runner)), base_url="http://hooks"
            )
            try:
                await use(runner, hooks, env)
            finally:
                await hooks.aclose()
                await runner.stop()
                store.close()


def console(runner: Runner, *, token: str | None) -> httpx.AsyncClient:
    """A client of a console app serving ``/metrics`` as the console mounts it."""
    handler = metrics_endpoint(runner.metrics.registry, token=token)
    app = Starlette(routes=[Route("/metrics", handler, methods=["GET"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")


async def post(hooks: httpx.AsyncClient, email: str, token: str = HOOK_TOKEN) -> int:
    body = json.dumps({"id": f"evt-{email}", "email": email})
    answer = await hooks.post("/hooks/x", content=body, headers={"X-Token": token})
    return answer.status_code


def test_three_runs_are_three_in_the_scrape_with_the_requests_behind_them(
    tmp_path: Path,
) -> None:
    fake = LoopsFake(keys={LOOPS_KEY})
    seen: dict[str, Any] = {}

    async def use(runner: Runner, hooks: httpx.AsyncClient, env: Any) -> None:
        codes = [await post(hooks, f"lead{i}@example.com") for i in range(3)]
        codes.append(await post(hooks, "lead0@example.com"))  # a duplicate delivery
        codes.append(await post(hooks, "intruder@example.com", token="wrong"))
        codes.append((await hooks.get("/hooks/x")).status_code)
        codes.append((await hooks.post("/nowhere", content=b"{}")).status_code)
        await asyncio.wait_for(runner.dispatcher.wait_idle(), 10)
        async with console(runner, token=None) as c:
            answer = await c.get("/metrics")
        seen.update(codes=codes, answer=answer, text=answer.text)

    asyncio.run(with_runner(tmp_path, use, fake))
    assert seen["codes"] == [202, 202, 202, 200, 401, 405, 404]
    assert len(fake.events) == 3
    answer = seen["answer"]
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    assert answer.headers["cache-control"] == "no-store"
    m = parse(seen["text"])
    assert sample(m, "automations_runs_total", recipe="x", status="succeeded") == 3
    assert sample(m, "automations_runs_total", recipe="x", status="failed") is None
    assert sample(m, "automations_requests_total", connection="loops", status="200") == 3
    assert sample(m, "automations_limiter_wait_seconds_count", connection="loops") == 3
    assert sample(m, "automations_intake_rejections_total", reason="signature") == 1
    assert sample(m, "automations_intake_rejections_total", reason="method") == 1
    assert sample(m, "automations_intake_rejections_total", reason="not_found") == 1
    assert sample(m, "automations_intake_rejections_total", reason="size") == 0
    # read from the store at scrape time: nothing waits, nothing is held or unknown
    assert sample(m, "automations_store_up") == 1
    assert sample(m, "automations_queued_runs", recipe="x") is None
    assert sample(m, "automations_runs_in_flight") == 0
    assert sample(m, "automations_recipes_loaded") == 1
    assert sample(m, "process_resident_memory_bytes") is not None


def test_no_secret_and_no_address_appears_in_the_metrics(tmp_path: Path) -> None:
    fake = LoopsFake(keys={LOOPS_KEY})
    fake.script(429)  # a 429 carries the connection's name, never its key or URL
    seen: dict[str, Any] = {}

    async def use(runner: Runner, hooks: httpx.AsyncClient, env: Any) -> None:
        await post(hooks, "ada.lovelace@example.com")
        await post(hooks, "+15555550123@example.com", token="wrong-" + HOOK_TOKEN)
        await asyncio.wait_for(runner.dispatcher.wait_idle(), 10)
        async with console(runner, token=CONSOLE_TOKEN) as c:
            answer = await c.get("/metrics", headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"})
        seen.update(text=answer.text, base_url=env["LOOPS_BASE_URL"])

    asyncio.run(with_runner(tmp_path, use, fake))
    text = seen["text"]
    m = parse(text)
    assert sample(m, "automations_rate_limited_total", connection="loops") == 1
    assert sample(m, "automations_retries_total", connection="loops", reason="429") == 1
    assert sample(m, "automations_runs_total", recipe="x", status="succeeded") == 1
    for secret in (LOOPS_KEY, HOOK_TOKEN, CONSOLE_TOKEN, "ada.lovelace", "5555550123"):
        assert secret not in text
    assert seen["base_url"].removeprefix("http://") not in text  # no host or port either


@pytest.mark.parametrize(
    ("token", "authorization", "status"),
    [
        (None, None, 200),  # no token: the console is on loopback only, and so is this
        (None, "Bearer anything", 200),
        (CONSOLE_TOKEN, f"Bearer {CONSOLE_TOKEN}", 200),
        (CONSOLE_TOKEN, f"bearer  {CONSOLE_TOKEN}", 200),
        (CONSOLE_TOKEN, None, 401),
        (CONSOLE_TOKEN, "Bearer wrong", 401),
        (CONSOLE_TOKEN, f"Basic {CONSOLE_TOKEN}", 401),
        (CONSOLE_TOKEN, "Bearer ", 401),
        (CONSOLE_TOKEN, CONSOLE_TOKEN, 401),  # no scheme
    ],
)
def test_with_a_console_token_only_the_bearer_token_reads_the_metrics(
    tmp_path: Path, token: str | None, authorization: str | None, status: int
) -> None:
    seen: dict[str, Any] = {}

    async def use(runner: Runner, hooks: httpx.AsyncClient, env: Any) -> None:
        headers = {} if authorization is None else {"Authorization": authorization}
        async with console(runner, token=token) as c:
            seen["answer"] = await c.get("/metrics", headers=headers)

    asyncio.run(with_runner(tmp_path, use, LoopsFake(keys={LOOPS_KEY})))
    answer = seen["answer"]
    assert answer.status_code == status
    if status == 401:
        assert answer.headers["www-authenticate"] == 'Bearer realm="automations"'
        assert "automations_" not in answer.text
        assert answer.json() == {"error": "send the console token: Authorization: Bearer <token>"}


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def use(runner: Runner, hooks: httpx.AsyncClient, env: Any) -> None:
        async with console(runner, token=None) as c:
            seen["answer"] = await c.get(
                "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            )

    asyncio.run(with_runner(tmp_path, use, LoopsFake(keys={LOOPS_KEY})))
    answer = seen["answer"]
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
