"""``StoreThread``: calls made on one thread of its own, in order; results and errors come back
to the caller; a caller that stops waiting does not stop the call."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from automations.errors import StoreError
from automations.stores.sqlite import SQLiteStore
from automations.stores.thread import StoreThread


def test_calls_run_in_order_on_one_thread_and_return_their_results() -> None:
    seen: list[tuple[int, str]] = []

    def call(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 10

    async def main() -> list[int]:
        io = StoreThread("store-test")
        try:
            return list(await asyncio.gather(*(io(call, i) for i in range(20))))
        finally:
            io.close()

    assert asyncio.run(main()) == [i * 10 for i in range(20)]
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"store-test"}


def test_an_error_reaches_the_caller() -> None:
    def fail() -> None:
        raise StoreError("disk full")

    async def main() -> None:
        io = StoreThread("store-test")
        try:
            await io(fail)
        finally:
            io.close()

    with pytest.raises(StoreError, match="disk full"):
        asyncio.run(main())


def test_a_caller_that_stops_waiting_leaves_the_call_to_complete() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow_write() -> str:
        started.set()
        release.wait(5)
        done.append("written")
        return "written"

    async def main() -> str:
        io = StoreThread("store-test")
        task = asyncio.ensure_future(io(slow_write))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        after = await io(lambda: "next")  # the thread goes on with the next call
        await asyncio.to_thread(io.close)
        return after

    assert asyncio.run(main()) == "next"
    assert done == ["written"]


# -- grouped calls: one commit for the calls queued together, each answered once durable ------


def _queued_behind_a_plain_call(
    io: StoreThread, calls: list[tuple[bool, Callable[[], object]]]
) -> Coroutine[Any, Any, list[object]]:
    """Make ``calls`` (grouped or not) while the thread is busy, so they queue together; each
    caller's result or error, in order."""

    async def main() -> list[object]:
        busy, release = threading.Event(), threading.Event()

        def block() -> None:
            busy.set()
            release.wait(5)

        first = asyncio.ensure_future(io(block))
        await asyncio.to_thread(busy.wait, 5)
        tasks = [
            asyncio.ensure_future(io.grouped(fn) if grouped else io(fn)) for grouped, fn in calls
        ]
        await asyncio.sleep(0)  # every call is queued before the thread is free
        release.set()
        await first
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    return main()


def _commits(store: SQLiteStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen


def test_grouped_writes_queued_together_commit_once_and_each_caller_gets_its_result(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    commits = _commits(store)
    io = StoreThread("store-test", group=store)

    def write(i: int) -> Callable[[], object]:
        return lambda: store.set_state("t", [(f"k{i}", str(i))]) or i

    try:
        results = asyncio.run(
            _queued_behind_a_plain_call(io, [(True, write(i)) for i in range(10)])
        )
    finally:
        io.close()
    assert results == list(range(10))
    assert len(commits) == 1  # ten writes, one commit
    other = SQLiteStore(tmp_path / "runs.db")  # durable: another connection reads them all
    assert other.get_states("t", [f"k{i}" for i in range(10)]) == {
        f"k{i}": str(i) for i in range(10)
    }


def test_a_grouped_call_that_fails_is_undone_alone(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    io = StoreThread("store-test", group=store)

    def half_then_fail() -> None:
        store.set_state("t", [("half", "written")])
        raise StoreError("refused")

    calls: list[tuple[bool, Callable[[], object]]] = [
        (True, lambda: store.set_state("t", [("before", "1")])),
        (True, half_then_fail),
        (True, lambda: store.set_state("t", [("after", "1")])),
    ]
    try:
        results = asyncio.run(_queued_behind_a_plain_call(io, calls))
    finally:
        io.close()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreError) and "refused" in str(results[1])
    other = SQLiteStore(tmp_path / "runs.db")
    assert other.get_states("t", ["before", "half", "after"]) == {"before": "1", "after": "1"}


class _Failing:
    """A group store whose commit (or savepoint) fails: nothing of the group is durable."""

    def __init__(self, store: SQLiteStore, where: str) -> None:
        self.store, self.where = store, where

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.store.transaction():
            yield
            if self.where == "commit":
                raise StoreError("disk I/O error")

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.store.savepoint():
            yield
        if self.where == "savepoint":
            raise StoreError("the transaction was rolled back")


@pytest.mark.parametrize("where", ["commit", "savepoint"])
def test_when_the_group_cannot_commit_every_caller_gets_the_error(
    tmp_path: Path, where: str
) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    io = StoreThread("store-test", group=_Failing(store, where))
    calls: list[tuple[bool, Callable[[], object]]] = [
        (True, lambda i=i: store.set_state("t", [(f"k{i}", "1")])) for i in range(3)
    ]
    try:
        results = asyncio.run(_queued_behind_a_plain_call(io, calls))
    finally:
        io.close()
    assert all(isinstance(r, StoreError) for r in results), results
    assert SQLiteStore(tmp_path / "runs.db").get_states("t", ["k0", "k1", "k2"]) == {}


def test_grouped_and_plain_calls_keep_their_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    commits = _commits(store)
    io = StoreThread("store-test", group=store)
    seen: list[str] = []

    def step(name: str) -> Callable[[], object]:
        return lambda: seen.append(name) or store.set_state("t", [(name, "1")])

    plan = [(True, "g1"), (True, "g2"), (False, "plain"), (True, "g3"), (True, "g4")]
    try:
        asyncio.run(_queued_behind_a_plain_call(io, [(g, step(n)) for g, n in plan]))
    finally:
        io.close()
    assert seen == ["g1", "g2", "plain", "g3", "g4"]
    assert len(commits) == 3  # g1+g2, plain, g3+g4


def test_without_a_group_store_grouped_calls_are_plain_calls() -> None:
    io = StoreThread("store-test")
    try:
        results = asyncio.run(
            _queued_behind_a_plain_call(io, [(True, lambda: 1), (True, lambda: 2)])
        )
    finally:
        io.close()
    assert results == [1, 2]


def test_a_closed_thread_refuses_new_calls() -> None:
    async def main() -> None:
        io = StoreThread("store-test")
        assert await io(lambda: 1) == 1
        await asyncio.to_thread(io.close)
        with pytest.raises(RuntimeError, match="closed"):
            await io(lambda: 2)

    asyncio.run(main())
