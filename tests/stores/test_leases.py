"""The ``ClaimStore`` contract over every store: claims oldest first, one row's runs in order, a
token per claim, fenced writes, renewal, a guarded rescue, release. Time is a parameter: nothing
sleeps."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from automations.ports import Lease
from automations.records import RunStatus, StepRecord, StepStatus
from automations.stores import MemoryStore, PostgresStore, SQLiteStore
from automations.stores.sqlite_claims import RESCUE_BATCH
from tests.postgres import emptied_store_url
from tests.stores.factories import T0, FakeClock, make_run, make_step

Store = MemoryStore | SQLiteStore | PostgresStore
NOW = T0 + 100
TTL = 30.0


@pytest.fixture(
    params=[
        "memory",
        pytest.param("sqlite", marks=pytest.mark.integration),
        pytest.param("postgres", marks=pytest.mark.integration),
    ],
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    clock = FakeClock()
    if request.param == "memory":
        s = MemoryStore(clock=clock)
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "runs.db", clock=clock)
    else:
        s = PostgresStore(emptied_store_url(), clock=clock)
    yield s
    s.close()


def sending(run_id: str, index: int = 0) -> StepRecord:
    return dataclasses.replace(
        make_step(run_id, index, status=StepStatus.SENDING), http_status=None, finished_at=None
    )


def claim(store: Store, owner: str, *, now: float = NOW, limit: int = 10, **kw: object) -> list:
    return store.claim_ready(owner, ttl_s=TTL, limit=limit, now=now, **kw)  # type: ignore[arg-type]


def enqueue(store: Store, *items: tuple[str, str | None], recipe: str = "welcome") -> None:
    runs = [(make_run(i, recipe=recipe, event_key=f"e-{i}"), key, False) for i, key in items]
    store.enqueue_claimed(runs, "nobody", ttl_s=TTL, now=NOW)


def test_claims_take_ready_runs_oldest_first_once(store: Store) -> None:
    enqueue(store, *[(f"r{n}", None) for n in range(5)])
    first = claim(store, "node-a", limit=3)
    assert [(c.run.id, c.lease.token) for c in first] == [("r0", 1), ("r1", 1), ("r2", 1)]
    assert first[0].lease == Lease("r0", "node-a", 1)
    assert first[0].run.status is RunStatus.RUNNING
    assert store.get_run("r0").status is RunStatus.RUNNING
    assert [c.run.id for c in claim(store, "node-b", limit=3)] == ["r3", "r4"]
    assert claim(store, "node-b") == []


def test_a_claim_can_be_limited_to_one_recipe(store: Store) -> None:
    enqueue(store, ("a1", None), recipe="a")
    enqueue(store, ("b1", None), ("b2", None), recipe="b")
    assert store.ready_recipes(now=NOW) == ["a", "b"]
    assert [c.run.id for c in claim(store, "n", recipe="b")] == ["b1", "b2"]
    assert store.ready_recipes(now=NOW) == ["a"]
    assert [c.run.id for c in claim(store, "n", recipe="b")] == []


def test_one_rows_runs_are_claimed_one_at_a_time_in_order(store: Store) -> None:
    enqueue(store, ("k0", "welcome:ada"), ("k1", "welcome:ada"), ("other", None))
    enqueue(store, ("k2", "welcome:ada"))
    assert [c.run.id for c in claim(store, "node-a")] == ["k0", "other"]
    assert claim(store, "node-b") == []  # k1 waits for k0, k2 for k1
    store.update_run("k0", status=RunStatus.SUCCEEDED)
    assert [c.run.id for c in claim(store, "node-b")] == ["k1"]


def test_an_insert_claims_its_run_unless_an_earlier_one_of_its_key_is_open(store: Store) -> None:
    results = store.enqueue_claimed(
        [
            (make_run("k0", event_key="e0"), "welcome:ada", True),
            (make_run("k1", event_key="e1"), "welcome:ada", True),
            (make_run("w1", event_key="e2"), None, True),
            (make_run("w2", event_key="e3"), None, False),
        ],
        "node-a",
        ttl_s=TTL,
        now=NOW,
    )
    got = [(r.id, r.status, new, lease) for r, new, lease in results]
    assert got == [
        ("k0", RunStatus.RUNNING, True, Lease("k0", "node-a", 1)),
        ("k1", RunStatus.PENDING, True, None),  # behind k0
        ("w1", RunStatus.RUNNING, True, Lease("w1", "node-a", 1)),
        ("w2", RunStatus.PENDING, True, None),
    ]
    assert store.get_run("k0").status is RunStatus.RUNNING
    again = store.enqueue_claimed(
        [(make_run("dup", event_key="e0"), "welcome:ada", True)], "node-b", ttl_s=TTL, now=NOW
    )
    assert [(r.id, new, lease) for r, new, lease in again] == [("k0", False, None)]
    assert [c.run.id for c in claim(store, "node-b")] == ["w2"]  # k1 still waits for k0
    assert store.renew("node-a", ttl_s=TTL, now=NOW + 1) == {"k0": 1, "w1": 1}


def test_each_claim_increments_the_token(store: Store) -> None:
    enqueue(store, ("r1", None))
    assert [c.lease.token for c in claim(store, "node-a")] == [1]
    assert store.rescue_expired(now=NOW + TTL + 1) == {"r1": 1}
    assert [c.lease.token for c in claim(store, "node-b", now=NOW + TTL + 1)] == [2]


def test_a_fenced_sending_write_after_a_rescue_returns_false(store: Store) -> None:
    enqueue(store, ("r1", None))
    [mine] = claim(store, "node-a")
    assert store.mark_sending(sending("r1", 0), mine.lease, now=NOW + 1) is True
    # paused past its lease: expired, even before anyone rescues it
    assert store.mark_sending(sending("r1", 1), mine.lease, now=NOW + TTL) is False
    assert store.rescue_expired(now=NOW + TTL + 1) == {"r1": 1}
    [theirs] = claim(store, "node-b", now=NOW + TTL + 1)
    # the old owner wakes up: its token is stale, nothing is written, it must not send
    assert store.mark_sending(sending("r1", 1), mine.lease, now=NOW + TTL + 2) is False
    assert store.holds(mine.lease) is False
    assert store.claim("r1", "h", lease=mine.lease) is None  # nor record its version
    assert store.mark_sending(sending("r1", 1), theirs.lease, now=NOW + TTL + 2) is True
    assert store.holds(theirs.lease) is True
    assert [s.index for s in store.get_run("r1").steps] == [0, 1]
    resumed = store.claim("r1", "h", lease=theirs.lease)
    assert resumed is not None and resumed.steps[0].status is StepStatus.SENDING


def test_a_final_step_is_never_reopened_by_a_sending_write(store: Store) -> None:
    enqueue(store, ("r1", None))
    [mine] = claim(store, "node-a")
    store.put_step(make_step("r1", 0, status=StepStatus.UNKNOWN))
    assert store.mark_sending(sending("r1", 0), mine.lease, now=NOW + 1) is False
    assert store.get_run("r1").steps[0].status is StepStatus.UNKNOWN


def test_rescue_never_touches_a_finished_or_renewed_run(store: Store) -> None:
    enqueue(store, ("done", None), ("renewed", None), ("stuck", None))
    tokens = {c.run.id: c.lease.token for c in claim(store, "node-a")}
    store.update_run("done", status=RunStatus.SUCCEEDED, finished_at=NOW + 5)
    # renew at NOW+20: every unexpired lease of the node, "done" is no longer running
    assert store.renew("node-a", ttl_s=TTL, now=NOW + 20) == {
        "renewed": tokens["renewed"],
        "stuck": tokens["stuck"],
    }
    assert store.rescue_expired(now=NOW + 45) == {}  # renewed until NOW+50
    assert store.rescue_expired(now=NOW + 51, grace_s=5) == {}  # within the grace
    assert store.rescue_expired(now=NOW + 56, grace_s=5) == {
        "renewed": tokens["renewed"],
        "stuck": tokens["stuck"],
    }
    assert store.get_run("done").status is RunStatus.SUCCEEDED
    assert store.count(RunStatus.PENDING) == 2
    # an expired lease cannot be renewed back to life
    assert store.renew("node-a", ttl_s=TTL, now=NOW + 60) == {}


def test_release_gives_a_run_back_until_a_later_time(store: Store) -> None:
    enqueue(store, ("r1", None))
    [mine] = claim(store, "node-a")
    assert store.release(dataclasses.replace(mine.lease, owner="node-b"), available_at=NOW) is False
    assert store.release(mine.lease, available_at=NOW + 30) is True
    assert claim(store, "node-b", now=NOW + 29) == []
    assert [c.lease.token for c in claim(store, "node-b", now=NOW + 30)] == [2]


def test_a_deferred_run_is_claimed_again_by_id_whenever_it_is_available(store: Store) -> None:
    enqueue(store, ("r1", None))
    [mine] = claim(store, "node-a")
    assert store.release(mine.lease, available_at=NOW + 30) is True
    again = store.claim_run("r1", "node-a", ttl_s=TTL, now=NOW + 1)
    assert again is not None and again.lease == Lease("r1", "node-a", 2)
    assert store.claim_run("r1", "node-b", ttl_s=TTL, now=NOW + 1) is None  # a's
    mine_again = store.claim_run("r1", "node-a", ttl_s=TTL, now=NOW + 1)
    assert mine_again is not None and mine_again.lease.token == 3
    store.update_run("r1", status=RunStatus.SUCCEEDED)
    assert store.claim_run("r1", "node-a", ttl_s=TTL, now=NOW + 1) is None


def test_a_graceful_stop_gives_back_the_runs_with_nothing_in_flight(store: Store) -> None:
    enqueue(store, ("idle", None), ("midway", None), ("sending", None), ("theirs", None))
    mine = {c.run.id: c.lease for c in claim(store, "node-a", limit=3)}
    [theirs] = claim(store, "node-b")
    store.put_step(make_step("midway", 0))  # a step done, nothing in flight
    assert store.mark_sending(sending("sending"), mine["sending"], now=NOW + 1)
    assert store.release_idle("node-a", now=NOW + 2) == 2
    assert store.get_run("sending").status is RunStatus.RUNNING  # kept until its lease expires
    assert store.holds(theirs.lease) is True
    assert [c.run.id for c in claim(store, "node-c", now=NOW + 2)] == ["idle", "midway"]


def test_rescue_all_resumes_every_running_run_at_the_start_of_its_only_node(store: Store) -> None:
    enqueue(store, ("leased", None), ("unleased", None))
    claim(store, "node-a", limit=1)
    assert store.claim("unleased", "h") is not None  # a run claimed without a lease (exec)
    assert store.rescue_expired(now=NOW + 1000) == {"leased": 1}
    claim(store, "node-a", limit=1, now=NOW + 1000)
    assert store.rescue_all() == 2
    assert store.count(RunStatus.RUNNING) == 0


def test_rescue_all_gives_back_more_runs_than_one_of_its_commits_holds(store: Store) -> None:
    # SQLite gives them back RESCUE_BATCH at a time: two batches and a part, all of them
    many = 2 * RESCUE_BATCH + 7
    enqueue(store, *[(f"r{n}", None) for n in range(many + 3)])
    assert len(claim(store, "node-a", limit=many)) == many
    assert store.rescue_all() == many
    assert store.count(RunStatus.RUNNING) == 0
    assert store.count(RunStatus.PENDING) == many + 3
    assert store.rescue_all() == 0


def test_a_write_block_fenced_by_holds_commits_only_for_the_owner(store: Store) -> None:
    enqueue(store, ("r1", None))
    [mine] = claim(store, "node-a")
    with store.transaction():
        assert store.holds(mine.lease)
        store.put_step(make_step("r1", 0))
        store.update_run("r1", status=RunStatus.SUCCEEDED, finished_at=NOW + 1)
    assert store.get_run("r1").status is RunStatus.SUCCEEDED
    assert store.holds(mine.lease) is False  # finished: no lease is held any more


def test_two_nodes_claiming_at_once_never_share_a_run(store: Store) -> None:
    enqueue(store, *[(f"r{n:03d}", f"k{n % 7}" if n % 3 else None) for n in range(200)])
    got: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def node(name: str) -> None:
        start.wait()
        while True:
            batch = claim(store, name, limit=7)
            for c in batch:
                store.update_run(c.run.id, status=RunStatus.SUCCEEDED)
            got[name].extend(c.run.id for c in batch)
            if not batch and store.count(RunStatus.PENDING) == 0:
                return

    threads = [threading.Thread(target=node, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got["a"]) + len(got["b"]) == 200
    assert set(got["a"]) | set(got["b"]) == {f"r{n:03d}" for n in range(200)}


@pytest.mark.integration
def test_a_rescue_waits_for_a_sending_mark_being_written() -> None:
    """On PostgreSQL the mark reads the run FOR SHARE: a rescue racing with it waits for its
    commit, so the next owner sees the step ``sending`` (and applies the resume rule) instead of
    sending again beside the old owner."""
    store = PostgresStore(emptied_store_url())
    try:
        enqueue(store, ("r1", None))  # type: ignore[arg-type]
        [mine] = claim(store, "node-a")  # type: ignore[arg-type]
        rescued: dict[str, int] = {}
        rescuer = threading.Thread(
            target=lambda: rescued.update(store.rescue_expired(now=NOW + TTL + 1))
        )
        with store.transaction():
            assert store.mark_sending(sending("r1"), mine.lease, now=NOW + TTL - 0.1) is True
            rescuer.start()
            rescuer.join(0.5)
            assert rescuer.is_alive()  # blocked on the run's row until the mark commits
        rescuer.join(10)
        assert rescued == {"r1": 1}
        [theirs] = claim(store, "node-b", now=NOW + TTL + 1)  # type: ignore[arg-type]
        assert store.get_run(theirs.run.id).steps[0].status is StepStatus.SENDING
    finally:
        store.close()
