"""Lease settings from the environment, and the keeper that renews and rescues on its own thread
(a hung event loop stops renewing). Time is a fake clock; nothing sleeps."""

from __future__ import annotations

import asyncio

import pytest

from automations.errors import ConfigError
from automations.runner.claims import ClaimSettings, LeaseKeeper
from automations.stores import MemoryStore
from automations.stores.wakeup import Wakeup
from tests.stores.factories import FakeClock, make_run


def test_defaults_take_over_within_a_minute() -> None:
    s = ClaimSettings.from_env({})
    assert (s.ttl_s, s.heartbeat_s, s.rescue_every_s, s.grace_s, s.poll_s) == (30, 10, 15, 5, 1)
    assert s.ttl_s + s.grace_s + s.rescue_every_s + s.poll_s < 60


def test_settings_from_the_environment() -> None:
    env = {
        "AUTOMATIONS_LEASE_TTL": "3",
        "AUTOMATIONS_LEASE_HEARTBEAT": "1",
        "AUTOMATIONS_CLAIM_POLL": "0.5",
    }
    s = ClaimSettings.from_env(env)
    assert (s.ttl_s, s.heartbeat_s, s.poll_s) == (3.0, 1.0, 0.5)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_value_says_what_it_must_be(value: str) -> None:
    with pytest.raises(ConfigError, match="AUTOMATIONS_LEASE_GRACE must be a number of seconds"):
        ClaimSettings.from_env({"AUTOMATIONS_LEASE_GRACE": value})


def test_a_heartbeat_not_shorter_than_the_lease_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"HEARTBEAT \(30 s\) must be shorter than .*TTL \(30 s\)"
    ):
        ClaimSettings.from_env({"AUTOMATIONS_LEASE_HEARTBEAT": "30"})


def test_the_keeper_renews_while_the_loop_ticks_and_stops_when_it_hangs() -> None:
    wall = FakeClock()
    store = MemoryStore(clock=wall)
    store.enqueue_claimed([(make_run("r1"), None, True)], "me", ttl_s=30)  # until +30
    mono = FakeClock()
    keeper = LeaseKeeper(store, "me", ClaimSettings(), clock=mono)
    wall.now += 20
    mono.now += 20
    keeper.beat()
    keeper.renew_once()  # until +50
    wall.now += 25
    assert store.rescue_expired(grace_s=0) == {}
    # the loop hangs: no tick for longer than a lease, so the keeper lets the lease go
    mono.now += 31
    keeper.renew_once()
    assert keeper.renewals == 1
    wall.now += 10
    assert store.rescue_expired(grace_s=0) == {"r1": 1}


def test_the_keeper_rescues_and_says_which_runs() -> None:
    wall = FakeClock()
    store = MemoryStore(clock=wall)
    store.enqueue_claimed([(make_run("r1"), None, True)], "dead-node", ttl_s=30)
    heard: list[dict[str, int]] = []
    keeper = LeaseKeeper(store, "me", ClaimSettings(), rescued=heard.append)
    keeper.rescue_once()
    assert heard == []
    wall.now += 36
    keeper.rescue_once()
    assert heard == [{"r1": 1}]
    assert keeper.rescues == 1


def test_a_wake_ends_the_wait_at_once() -> None:
    async def go() -> float:
        wake = Wakeup()
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, wake.set)
        start = loop.time()
        await wake.wait(30)
        return loop.time() - start

    assert asyncio.run(go()) < 5
