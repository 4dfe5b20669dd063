"""``automations run --db postgresql://...``: webhooks recorded in PostgreSQL and run once, by
one runner, by two sharing the database (each event runs once, no SMS twice, with exact counts
at the fakes), and after one of two is killed (the other continues its runs once their leases
expire: Loops resent with the same key, an SMS cut off mid-send ``unknown``, never sent twice)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from automations.records import RunFilter, RunStatus
from automations.stores.postgres import PostgresStore
from tests.acceptance.conftest import Fakes, StartRunner, dumps, standard_headers, write_recipe
from tests.acceptance.runner_process import RunnerProcess, wait_until
from tests.postgres import fresh_schema

pytestmark = pytest.mark.acceptance

LOOPS_HOOK = """
name: loops-hook
trigger:
  webhook:
    path: /hooks/loops
    verify: {scheme: standard-webhooks, secret: "${HOOK_SECRET}"}
actions:
  - loops.send_event: {email: /email, eventName: hooked}
"""


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def test_a_runner_on_postgres_records_and_runs_each_webhook_once(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes, pg: str
) -> None:
    write_recipe(recipes_dir, "loops-hook.yaml", LOOPS_HOOK)
    runner = start_runner(recipes_dir, "--db", pg)
    ids = []
    for n in range(5):
        body = dumps({"email": f"user{n}@example.com"})
        answer = runner.post("/hooks/loops", body, standard_headers(body, f"msg_{n}"))
        assert answer.status_code == 202
        ids.append(answer.json()["run_id"])
    body = dumps({"email": "user0@example.com"})
    again = runner.post("/hooks/loops", body, standard_headers(body, "msg_0"))
    assert (again.status_code, again.json()) == (200, {"run_id": ids[0], "status": "duplicate"})

    store = PostgresStore(pg)
    try:
        wait_until(lambda: store.count(RunStatus.SUCCEEDED) == 5, "5 runs succeeded in PostgreSQL")
        runs = store.list_runs(RunFilter())
        assert sorted(r.id for r in runs) == sorted(ids)
    finally:
        store.close()
    sent = Counter(e["body"]["email"] for e in fakes.loops_events())
    assert sent == Counter({f"user{n}@example.com": 1 for n in range(5)})
    assert not (recipes_dir.parent / "automations.db").exists()


TEXTS = """
name: texts
trigger:
  webhook:
    path: /hooks/texts
    verify: {scheme: standard-webhooks, secret: "${HOOK_SECRET}"}
actions:
  - quo.send_sms: {from: "${QUO_FROM}", to: [/phone], content: "Hello {/n}"}
"""

#: Leases of a few seconds, so that a takeover is seen within the test.
FAST_LEASES = {
    "AUTOMATIONS_LEASE_TTL": "3",
    "AUTOMATIONS_LEASE_HEARTBEAT": "1",
    "AUTOMATIONS_LEASE_RESCUE_EVERY": "0.5",
    "AUTOMATIONS_LEASE_GRACE": "0.5",
    "AUTOMATIONS_CLAIM_POLL": "0.5",
}


def _event(n: int) -> tuple[str, bytes]:
    """Event ``n``: even ones send an SMS, odd ones a Loops event."""
    if n % 2 == 0:
        return "/hooks/texts", dumps({"phone": f"(555) 555-{1000 + n:04d}", "n": n})
    return "/hooks/loops", dumps({"email": f"user{n}@example.com"})


def _post(runner: RunnerProcess, n: int) -> tuple[int, str]:
    path, body = _event(n)
    answer = runner.post(path, body, standard_headers(body, f"msg_{n}"))
    return answer.status_code, str(answer.json()["run_id"])


def _two_runners(
    recipes_dir: Path, start_runner: StartRunner, pg: str, *args: str
) -> tuple[RunnerProcess, RunnerProcess]:
    write_recipe(recipes_dir, "loops-hook.yaml", LOOPS_HOOK)
    write_recipe(recipes_dir, "texts.yaml", TEXTS)
    return (
        start_runner(recipes_dir, "--db", pg, *args, env=FAST_LEASES),
        start_runner(recipes_dir, "--db", pg, *args, env=FAST_LEASES),
    )


def _statuses(pg: str) -> Counter[str]:
    store = PostgresStore(pg)
    try:
        return Counter(r.status.value for r in store.list_runs(RunFilter(limit=10_000)))
    finally:
        store.close()


def test_two_runners_on_one_database_run_each_event_once(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes, pg: str
) -> None:
    a, b = _two_runners(recipes_dir, start_runner, pg)
    events = 40
    # every event is delivered to one node and, at the same time, again to the other (a
    # provider's retry through the load balancer): one run per event, whoever records it
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda n: _post((a, b)[n % 2], n), range(events)))
        again = list(pool.map(lambda n: _post((b, a)[n % 2], n), range(events)))
    for n in range(events):
        assert first[n][1] == again[n][1], f"event {n} got two runs"
        assert sorted([first[n][0], again[n][0]]) == [200, 202]

    wait_until(lambda: _statuses(pg) == Counter({"succeeded": events}), "every run succeeded")
    texts = Counter(m["text"] for m in fakes.quo.sent_messages)
    assert texts == Counter({f"Hello {n}": 1 for n in range(0, events, 2)})
    emails = Counter(e["body"]["email"] for e in fakes.loops_events())
    assert emails == Counter({f"user{n}@example.com": 1 for n in range(1, events, 2)})
    # both nodes executed runs (each claims the runs it records)
    assert "succeeded" in a.log and "succeeded" in b.log
    assert "Traceback" not in a.log + b.log


def test_a_killed_runners_runs_are_continued_by_the_other_once(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes, pg: str
) -> None:
    a, b = _two_runners(recipes_dir, start_runner, pg, "--concurrency", "2")
    fakes.set_latency(0.3)  # runs are in flight when a is killed
    events = 16
    assert [_post(a, n)[0] for n in range(events)] == [202] * events
    wait_until(lambda: len(fakes.quo.received) + len(fakes.loops.received) >= 2, "a's first sends")
    a.kill()
    killed = time.monotonic()
    wait_until(
        lambda: sum(_statuses(pg)[s] for s in ("pending", "running")) == 0,
        "b to finish a's runs",
        timeout=60,
    )
    took = time.monotonic() - killed
    statuses = _statuses(pg)
    assert set(statuses) <= {"succeeded", "unknown"}, statuses
    assert sum(statuses.values()) == events
    store = PostgresStore(pg)
    try:
        runs = {r.event_key: r for r in store.list_runs(RunFilter(limit=100))}
    finally:
        store.close()
    # never twice: each SMS received once at most; one not received was cut off mid-send
    texts = Counter(m["text"] for m in fakes.quo.sent_messages)
    assert all(count == 1 for count in texts.values()), texts
    for n in range(0, events, 2):
        if f"Hello {n}" not in texts:
            assert runs[f"msg_{n}"].status is RunStatus.UNKNOWN
    assert statuses["unknown"] <= 2  # at most the two a had in flight
    # every Loops event arrived, a resent one with the key it was first sent with
    keys: dict[str, set[str]] = {}
    for e in fakes.loops_events():
        keys.setdefault(e["body"]["email"], set()).add(e["key"])
    assert set(keys) == {f"user{n}@example.com" for n in range(1, events, 2)}
    assert all(len(k) == 1 for k in keys.values()), keys
    assert "ready again" in b.log  # b rescued a's expired leases
    print(f"\ntakeover after SIGKILL (3 s leases): {took:.1f} s until a's runs were all done")
