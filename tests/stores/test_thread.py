"""``StoreThread``: calls made on one thread of its own, in order; results and errors come back
to the caller; a caller that stops waiting does not stop the call."""

from __future__ import annotations

import asyncio
import threading

import pytest

from automations.errors import StoreError
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
    assert {name for _, name in seen} == {"store-test_0"}


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
