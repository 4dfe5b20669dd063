"""The lead over schedules, table watching and pruning: one node at a time, taken over when the
leader stops renewing, given up when it cannot renew in time, handed over on a clean stop.
Leases on a controlled clock (nothing sleeps), then two runners on one PostgreSQL store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from automations.connections import Connections, ConnectionSettings
from automations.errors import StoreError
from automations.ports import Leaders
from automations.records import RunFilter, TriggerKind
from automations.runner.lead import LEAD, Lead
from automations.runner.service import Runner, RunnerOptions
from automations.stores.leaders import MemoryLeaders
from automations.stores.postgres import PostgresStore
from tests.postgres import emptied_store_url

TTL = 15.0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Node:
    def __init__(self, name: str, leaders: Leaders, clock: Clock) -> None:
        self.changes: list[bool] = []
        self.lead = Lead(leaders, ttl_s=TTL, changed=self._changed, node=name, clock=clock)

    async def _changed(self) -> None:
        self.changes.append(self.lead.leading)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def nodes(clock: Clock) -> Iterator[tuple[Node, Node, MemoryLeaders]]:
    leaders = MemoryLeaders(clock=clock)
    a, b = Node("a", leaders, clock), Node("b", leaders, clock)
    yield a, b, leaders
    a.lead.close()
    b.lead.close()


def test_one_node_leads_and_the_other_waits(nodes: tuple[Node, Node, MemoryLeaders]) -> None:
    a, b, leaders = nodes

    async def main() -> None:
        await a.lead.check()
        await b.lead.check()
        await a.lead.check()  # a renewal changes nothing

    asyncio.run(main())
    assert (a.lead.leading, a.lead.term, a.changes) == (True, 1, [True])
    assert (b.lead.leading, b.changes) == (False, [])
    assert leaders.leader(LEAD) == ("a", 1)


def test_a_stalled_leader_is_replaced_and_steps_down_when_it_wakes(
    nodes: tuple[Node, Node, MemoryLeaders], clock: Clock
) -> None:
    a, b, _ = nodes

    async def main() -> None:
        await a.lead.check()
        await b.lead.check()
        clock.t += TTL  # a stalls past its lease: no renewal
        await b.lead.check()
        await a.lead.check()  # a wakes up

    asyncio.run(main())
    assert (b.lead.leading, b.lead.term, b.changes) == (True, 2, [True])
    assert (a.lead.leading, a.changes) == (False, [True, False])


def test_a_leader_that_cannot_renew_steps_down_when_its_lease_runs_out(clock: Clock) -> None:
    class Flaky(MemoryLeaders):
        down = False

        def acquire(
            self, name: str, owner: str, ttl_s: float, *, now: float | None = None
        ) -> int | None:
            if self.down:
                raise StoreError("run store postgresql://db/x: connection refused")
            return super().acquire(name, owner, ttl_s, now=now)

    leaders = Flaky(clock=clock)
    a = Node("a", leaders, clock)

    async def main() -> list[bool]:
        await a.lead.check()
        leaders.down = True
        seen = []
        for _ in range(3):  # renewals fail every 5 s: it still leads within its lease
            clock.t += TTL / 3 - 0.01
            await a.lead.check()
            seen.append(a.lead.leading)
        clock.t += 0.05
        await a.lead.check()
        seen.append(a.lead.leading)
        return seen

    try:
        assert asyncio.run(main()) == [True, True, True, False]
        assert a.changes == [True, False]
    finally:
        a.lead.close()


def test_a_clean_stop_hands_the_lead_over_at_once(nodes: tuple[Node, Node, MemoryLeaders]) -> None:
    a, b, _ = nodes

    async def main() -> None:
        await a.lead.check()
        await b.lead.check()
        await a.lead.resign()
        await b.lead.check()

    asyncio.run(main())
    assert (a.lead.leading, b.lead.leading, b.lead.term) == (False, True, 2)


# -- two runners on one PostgreSQL store ----------------------------------------------------------

TICK = """name: tick
trigger:
  schedule: {every: 1s, missed: run_once}
actions:
  - http.request: {method: POST, url: "https://x.example/tick"}
"""


def fire_keys(store: PostgresStore) -> list[str]:
    runs = store.list_runs(RunFilter(limit=10_000))
    return sorted(r.event_key for r in runs if r.trigger is TriggerKind.SCHEDULE)


@pytest.mark.integration
def test_only_the_leader_fires_and_a_new_leader_catches_up(tmp_path: Path) -> None:
    url = emptied_store_url()
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tick.yaml").write_text(TICK)
    options = RunnerOptions(dry_run=True, leader_ttl_s=1.5)

    async def main() -> tuple[list[bool], list[bool], list[str], list[str]]:
        stores = [PostgresStore(url), PostgresStore(url)]
        conns = [Connections(ConnectionSettings.from_env({})) for _ in stores]
        a, b = (Runner(recipes, s, c, {}, options) for s, c in zip(stores, conns, strict=True))
        try:
            await a.start()
            await b.start()
            first = [a.lead.leading, b.lead.leading, bool(a.sources), bool(b.sources)]
            views = [r.health.answer(detail=True)["detail"]["lead"] for r in (a, b)]
            assert views == [
                {"node": a.lead.node, "leading": True, "term": 1},
                {"node": b.lead.node, "leading": False, "term": None},
            ]
            await asyncio.sleep(2.5)
            # a dies without a word: its lead and its schedule stop, its lease runs out
            assert a._leader is not None
            a._leader.cancel()
            for _, task in a.sources.values():
                task.cancel()
            died = time.time()
            before = fire_keys(stores[0])
            for _ in range(100):  # b takes over within the lease plus one check
                if b.lead.leading:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)
            after = [b.lead.leading, bool(b.sources)]
            keys = fire_keys(stores[0])
            print(f"takeover after {time.time() - died:.1f} s")
            return first, after, before, keys
        finally:
            a.lead._leading = False  # a is dead: it resigns nothing
            for runner in (b, a):
                await runner.stop()
            for s, c in zip(stores, conns, strict=True):
                await c.aclose()
                s.close()

    first, after, before, keys = asyncio.run(main())
    assert first == [True, False, True, False]
    assert after == [True, True]
    assert len(keys) == len(set(keys))  # each fire time once
    assert set(before) < set(keys)  # b fired after a died
    # no second went without its fire time: the missed ones ran (run_once: the latest at once,
    # then every second on time)
    assert len(keys) >= len(before) + 2
