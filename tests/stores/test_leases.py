"""Claims with leases on PostgreSQL: oldest first, one row's runs in order, a token per claim,
a fenced ``sending`` write, renewal and a guarded rescue. Time is a parameter: nothing sleeps."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest

from automations.records import RunStatus, StepRecord, StepStatus
from automations.stores.leases import Leases
from automations.stores.postgres import PostgresStore
from tests.postgres import emptied_store_url
from tests.stores.factories import T0, make_run, make_step

pytestmark = pytest.mark.integration
NOW = T0 + 100


@pytest.fixture
def store() -> Iterator[PostgresStore]:
    s = PostgresStore(emptied_store_url())
    yield s
    s.close()


def sending(run_id: str, index: int = 0) -> StepRecord:
    return dataclasses.replace(
        make_step(run_id, index, status=StepStatus.SENDING), http_status=None, finished_at=None
    )


def test_claims_take_ready_runs_oldest_first_once(store: PostgresStore) -> None:
    for n in range(5):
        store.enqueue(make_run(f"r{n}"))
    a, b = Leases(store, "node-a"), Leases(store, "node-b")
    first = a.claim_ready(now=NOW, limit=3)
    assert [(c.run.id, c.token) for c in first] == [("r0", 1), ("r1", 1), ("r2", 1)]
    assert first[0].run.status is RunStatus.RUNNING
    assert first[0].run.started_at == NOW
    assert [c.run.id for c in b.claim_ready(now=NOW, limit=3)] == ["r3", "r4"]
    assert b.claim_ready(now=NOW) == []


def test_one_rows_runs_are_claimed_one_at_a_time_in_order(store: PostgresStore) -> None:
    for n in range(3):
        store.enqueue(make_run(f"k{n}", event_key=f"ada@{n}"))
    store.enqueue(make_run("other", event_key="grace"))
    leases = Leases(store, "node-a")
    for n in range(3):
        leases.set_order_key(f"k{n}", "welcome:ada")
    assert [c.run.id for c in leases.claim_ready(now=NOW)] == ["k0", "other"]
    assert leases.claim_ready(now=NOW) == []  # k1 waits for k0
    store.update_run("k0", status=RunStatus.SUCCEEDED)
    assert [c.run.id for c in leases.claim_ready(now=NOW)] == ["k1"]


def test_two_nodes_claiming_at_once_never_share_a_run(store: PostgresStore) -> None:
    store.enqueue_many([make_run(f"r{n:03d}") for n in range(200)])
    got: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def node(name: str) -> None:
        leases = Leases(store, name)
        start.wait()
        while batch := leases.claim_ready(now=NOW, limit=7):
            got[name].extend(c.run.id for c in batch)

    threads = [threading.Thread(target=node, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got["a"]) + len(got["b"]) == 200
    assert set(got["a"]) | set(got["b"]) == {f"r{n:03d}" for n in range(200)}
    assert store.count(RunStatus.PENDING) == 0


def test_each_claim_increments_the_token(store: PostgresStore) -> None:
    store.enqueue(make_run("r1"))
    a, b = Leases(store, "node-a", ttl_s=30), Leases(store, "node-b", ttl_s=30)
    assert [c.token for c in a.claim_ready(now=NOW)] == [1]
    assert a.rescue_expired(now=NOW + 31) == {"r1": 1}
    assert [c.token for c in b.claim_ready(now=NOW + 31)] == [2]


def test_a_fenced_sending_write_after_a_rescue_returns_false(store: PostgresStore) -> None:
    store.enqueue(make_run("r1"))
    a, b = Leases(store, "node-a", ttl_s=30), Leases(store, "node-b", ttl_s=30)
    [mine] = a.claim_ready(now=NOW)
    assert a.mark_sending(sending("r1", 0), mine.token, now=NOW + 1) is True
    # paused past its lease: expired, even before anyone rescues it
    assert a.mark_sending(sending("r1", 1), mine.token, now=NOW + 30) is False
    assert a.rescue_expired(now=NOW + 31) == {"r1": 1}
    [theirs] = b.claim_ready(now=NOW + 31)
    # the old owner wakes up: its token is stale, nothing is written, it must not send
    assert a.mark_sending(sending("r1", 1), mine.token, now=NOW + 32) is False
    assert b.mark_sending(sending("r1", 1), theirs.token, now=NOW + 32) is True
    assert [s.index for s in store.get_run("r1").steps] == [0, 1]


def test_a_final_step_is_never_reopened_by_a_sending_write(store: PostgresStore) -> None:
    store.enqueue(make_run("r1"))
    leases = Leases(store, "node-a")
    [mine] = leases.claim_ready(now=NOW)
    store.put_step(make_step("r1", 0, status=StepStatus.UNKNOWN))
    assert leases.mark_sending(sending("r1", 0), mine.token, now=NOW + 1) is False
    assert store.get_run("r1").steps[0].status is StepStatus.UNKNOWN


def test_rescue_never_touches_a_finished_or_renewed_run(store: PostgresStore) -> None:
    store.enqueue_many([make_run("done"), make_run("renewed"), make_run("stuck")])
    a = Leases(store, "node-a", ttl_s=30)
    tokens = {c.run.id: c.token for c in a.claim_ready(now=NOW)}
    store.update_run("done", status=RunStatus.SUCCEEDED, finished_at=NOW + 5)
    # renew at NOW+20: every unexpired lease of the node, "done" is no longer running
    assert a.renew(now=NOW + 20) == {"renewed": tokens["renewed"], "stuck": tokens["stuck"]}
    assert a.rescue_expired(now=NOW + 45) == {}  # renewed until NOW+50
    assert a.rescue_expired(now=NOW + 51, grace_s=5) == {}  # within the grace
    assert a.rescue_expired(now=NOW + 56, grace_s=5) == {
        "renewed": tokens["renewed"],
        "stuck": tokens["stuck"],
    }
    assert store.get_run("done").status is RunStatus.SUCCEEDED
    assert store.count(RunStatus.PENDING) == 2
    # an expired lease cannot be renewed back to life
    assert a.renew(now=NOW + 60) == {}


def test_release_gives_a_run_back_until_a_later_time(store: PostgresStore) -> None:
    store.enqueue(make_run("r1"))
    a, b = Leases(store, "node-a"), Leases(store, "node-b")
    [mine] = a.claim_ready(now=NOW)
    assert b.release("r1", mine.token, available_at=NOW) is False  # not b's
    assert a.release("r1", mine.token, available_at=NOW + 30) is True
    assert b.claim_ready(now=NOW + 29) == []
    assert [c.token for c in b.claim_ready(now=NOW + 30)] == [2]


def test_a_rescue_waits_for_a_sending_mark_being_written(store: PostgresStore) -> None:
    """The mark reads the run FOR SHARE: a rescue racing with it waits for its commit, so the
    next owner sees the step ``sending`` (and applies the resume rule) instead of sending
    again beside the old owner."""
    store.enqueue(make_run("r1"))
    a, b = Leases(store, "node-a", ttl_s=30), Leases(store, "node-b", ttl_s=30)
    [mine] = a.claim_ready(now=NOW)
    rescued: dict[str, int] = {}
    rescuer = threading.Thread(target=lambda: rescued.update(b.rescue_expired(now=NOW + 31)))
    with store.transaction():
        assert a.mark_sending(sending("r1"), mine.token, now=NOW + 29.9) is True
        rescuer.start()
        rescuer.join(0.5)
        assert rescuer.is_alive()  # blocked on the run's row until the mark commits
    rescuer.join(10)
    assert rescued == {"r1": 1}
    [theirs] = b.claim_ready(now=NOW + 31)
    assert store.get_run(theirs.run.id).steps[0].status is StepStatus.SENDING
