"""Leader leases, one contract over memory and PostgreSQL: one owner at a time, a term that
grows at each change of owner, expiry, takeover, renewal only by the holder. Time is a
parameter: nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from automations.ports import Leaders
from automations.stores.leaders import MemoryLeaders, PostgresLeaders, leaders_for
from automations.stores.postgres import PostgresStore
from tests.postgres import emptied_store_url

T0 = 1_800_000_000.0
TTL = 15.0


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
def leaders(request: pytest.FixtureRequest) -> Iterator[Leaders]:
    if request.param == "memory":
        yield MemoryLeaders()
        return
    store = PostgresStore(emptied_store_url())
    try:
        yield PostgresLeaders(store)
    finally:
        store.close()


def test_the_first_comer_leads_in_term_one(leaders: Leaders) -> None:
    assert leaders.acquire("sources", "a", TTL, now=T0) == 1
    assert leaders.acquire("sources", "b", TTL, now=T0 + 1) is None
    assert leaders.leader("sources", now=T0 + 1) == ("a", 1)


def test_the_holder_acquiring_again_renews_in_the_same_term(leaders: Leaders) -> None:
    assert leaders.acquire("sources", "a", TTL, now=T0) == 1
    assert leaders.acquire("sources", "a", TTL, now=T0 + 10) == 1
    # renewed until T0 + 25: b cannot take it at T0 + 20
    assert leaders.acquire("sources", "b", TTL, now=T0 + 20) is None


def test_an_expired_lease_is_taken_in_the_next_term(leaders: Leaders) -> None:
    assert leaders.acquire("sources", "a", TTL, now=T0) == 1
    assert leaders.leader("sources", now=T0 + TTL) is None
    assert leaders.acquire("sources", "b", TTL, now=T0 + TTL) == 2
    assert leaders.leader("sources", now=T0 + TTL) == ("b", 2)
    # the stalled leader comes back: it neither renews nor takes it back
    assert not leaders.renew("sources", "a", 1, TTL, now=T0 + TTL + 1)
    assert leaders.acquire("sources", "a", TTL, now=T0 + TTL + 1) is None
    # and once b's lease expires, a leads again, in a third term
    assert leaders.acquire("sources", "a", TTL, now=T0 + 2 * TTL) == 3


def test_renewal_by_the_holder_extends_the_lease(leaders: Leaders) -> None:
    assert leaders.acquire("sources", "a", TTL, now=T0) == 1
    assert leaders.renew("sources", "a", 1, TTL, now=T0 + 14)
    assert leaders.acquire("sources", "b", TTL, now=T0 + 20) is None
    assert leaders.leader("sources", now=T0 + 28) == ("a", 1)


def test_renewal_by_the_wrong_owner_or_term_fails(leaders: Leaders) -> None:
    assert leaders.acquire("sources", "a", TTL, now=T0) == 1
    assert not leaders.renew("sources", "b", 1, TTL, now=T0 + 1)
    assert not leaders.renew("sources", "a", 2, TTL, now=T0 + 1)
    assert not leaders.renew("other", "a", 1, TTL, now=T0 + 1)
    assert leaders.leader("sources", now=T0 + 1) == ("a", 1)


def test_an_expired_lease_cannot_be_renewed(leaders: Leaders) -> None:
    assert leaders.acquire("sources", "a", TTL, now=T0) == 1
    assert not leaders.renew("sources", "a", 1, TTL, now=T0 + TTL)


def test_a_release_hands_over_at_once_in_a_higher_term(leaders: Leaders) -> None:
    assert leaders.acquire("sources", "a", TTL, now=T0) == 1
    assert not leaders.release("sources", "b")
    assert leaders.release("sources", "a")
    assert not leaders.release("sources", "a")  # once
    assert leaders.leader("sources", now=T0 + 1) is None
    assert leaders.acquire("sources", "b", TTL, now=T0 + 1) == 2


def test_names_are_leased_apart(leaders: Leaders) -> None:
    assert leaders.acquire("sources", "a", TTL, now=T0) == 1
    assert leaders.acquire("prune", "b", TTL, now=T0) == 1
    assert leaders.leader("prune", now=T0) == ("b", 1)


@pytest.mark.integration
def test_two_nodes_racing_for_a_free_lease_get_one_leader() -> None:
    import threading

    store = PostgresStore(emptied_store_url())
    try:
        leaders = PostgresLeaders(store)
        results: dict[str, int | None] = {}
        barrier = threading.Barrier(4)

        def race(owner: str) -> None:
            barrier.wait()
            results[owner] = leaders.acquire("sources", owner, TTL)

        threads = [threading.Thread(target=race, args=(f"n{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        store.close()
    assert sorted(results.values(), key=lambda v: v is None) == [1, None, None, None]


def test_one_process_stores_lead_on_their_own() -> None:
    from automations.stores import MemoryStore

    assert isinstance(leaders_for(MemoryStore()), MemoryLeaders)
