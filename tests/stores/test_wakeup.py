"""Wake-ups for the claim loop: set in process, or by a NOTIFY from any node; a dropped
listening connection is reconnected. Timeouts bound every wait; no timing is asserted."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from automations.stores import MemoryStore, SQLiteStore
from automations.stores.postgres import PostgresStore
from automations.stores.wakeup import PostgresWakeup, Wakeup, wakeup_for
from tests.postgres import emptied_store_url


async def woke(wakeup: Wakeup, timeout: float) -> bool:
    """Whether ``wait(timeout)`` returned for a wake-up (not for the timeout)."""
    before = wakeup.woken
    await wakeup.wait(timeout)
    return wakeup.woken > before


def test_a_wait_without_a_wake_up_times_out() -> None:
    async def main() -> bool:
        wakeup = Wakeup()
        await wakeup.start()
        return await woke(wakeup, 0.01)

    assert asyncio.run(main()) is False


def test_wake_ups_before_a_wait_count_once() -> None:
    async def main() -> tuple[bool, bool, int]:
        wakeup = Wakeup()
        await wakeup.start()
        wakeup.set()
        wakeup.set()
        first = await woke(wakeup, 5.0)
        second = await woke(wakeup, 0.01)
        return first, second, wakeup.woken

    assert asyncio.run(main()) == (True, False, 1)


def test_another_thread_wakes_the_waiter() -> None:
    async def main() -> bool:
        wakeup = Wakeup()
        await wakeup.start()
        waiting = asyncio.ensure_future(woke(wakeup, 10.0))
        await asyncio.sleep(0)
        thread = threading.Thread(target=wakeup.set)
        thread.start()
        thread.join()
        return await waiting

    assert asyncio.run(main()) is True


def test_one_process_stores_and_poll_only_have_no_listener(tmp_path: Path) -> None:
    sqlite = SQLiteStore(tmp_path / "runs.db")
    try:
        assert type(wakeup_for(MemoryStore())) is Wakeup
        assert type(wakeup_for(sqlite)) is Wakeup
    finally:
        sqlite.close()


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture
def store() -> Iterator[PostgresStore]:
    s = PostgresStore(emptied_store_url())
    yield s
    s.close()


@pytest.mark.integration
def test_postgres_picks_the_listener_unless_poll_only(store: PostgresStore) -> None:
    listener = wakeup_for(store)
    assert isinstance(listener, PostgresWakeup)
    assert listener.label == store.url
    assert type(wakeup_for(store, poll_only=True)) is Wakeup


@pytest.mark.integration
def test_a_notify_from_another_connection_wakes_the_listener(store: PostgresStore) -> None:
    async def main() -> tuple[bool, bool, int]:
        wakeup = wakeup_for(store)
        assert isinstance(wakeup, PostgresWakeup)
        await wakeup.start()
        try:
            assert await wakeup.wait_listening(10.0)
            await woke(wakeup, 5.0)  # the look it takes once connected
            quiet = await woke(wakeup, 0.05)
            await asyncio.to_thread(store.notify_pending)
            woken = await woke(wakeup, 10.0)
            return quiet, woken, wakeup.connects
        finally:
            await wakeup.aclose()

    assert asyncio.run(main()) == (False, True, 1)


@pytest.mark.integration
def test_a_notify_is_delivered_when_its_transaction_commits(store: PostgresStore) -> None:
    async def main() -> tuple[bool, bool]:
        wakeup = wakeup_for(store)
        await wakeup.start()
        try:
            assert isinstance(wakeup, PostgresWakeup)
            assert await wakeup.wait_listening(10.0)
            await woke(wakeup, 5.0)
            committed = threading.Event()
            go_on = threading.Event()

            def in_transaction() -> None:
                with store.transaction():
                    store.notify_pending()
                    go_on.wait(10.0)
                committed.set()

            thread = threading.Thread(target=in_transaction)
            thread.start()
            early = await woke(wakeup, 0.2)  # sent, but not committed yet
            go_on.set()
            woken = await woke(wakeup, 10.0)
            await asyncio.to_thread(thread.join)
            return early, woken
        finally:
            await wakeup.aclose()

    assert asyncio.run(main()) == (False, True)


@pytest.mark.integration
def test_a_dropped_listening_connection_is_reconnected(
    store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="automations.runner")

    async def main() -> tuple[bool, int]:
        wakeup = wakeup_for(store)
        assert isinstance(wakeup, PostgresWakeup)
        wakeup.check_every_s = 0.2
        await wakeup.start()
        try:
            assert await wakeup.wait_listening(10.0)
            await woke(wakeup, 5.0)
            pid = wakeup.backend_pid
            with psycopg.connect(store._dsn, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            for _ in range(1000):  # reconnected: a new server process listens
                if wakeup.listening and wakeup.backend_pid not in (None, pid):
                    break
                await asyncio.sleep(0.01)
            await woke(wakeup, 5.0)  # the look it takes after reconnecting
            await asyncio.to_thread(store.notify_pending)
            return await woke(wakeup, 10.0), wakeup.connects
        finally:
            await wakeup.aclose()

    assert asyncio.run(main()) == (True, 2)
    lost = [r.getMessage() for r in caplog.records if "was lost" in r.getMessage()]
    assert len(lost) == 1
    assert "polling every second meanwhile" in lost[0]
    assert any(
        "listening on" in r.getMessage() and "again" in r.getMessage() for r in caplog.records
    )


def test_an_unreachable_server_is_logged_once_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "postgresql://nobody:s3cret@127.0.0.1:1/none?connect_timeout=1"

    async def main() -> tuple[bool, bool]:
        wakeup = PostgresWakeup(
            url,
            label="postgresql://nobody:***@127.0.0.1:1/none",
            backoff_s=0.01,
            backoff_max_s=0.02,
        )
        await wakeup.start()
        await asyncio.sleep(0.3)
        listening = wakeup.listening
        woken = await woke(wakeup, 0.01)
        await wakeup.aclose()
        return listening, woken

    assert asyncio.run(main()) == (False, False)
    lines = [r.getMessage() for r in caplog.records if "wake-ups" in r.getMessage()]
    assert len(lines) == 1
    assert "cannot listen on postgresql://nobody:***@127.0.0.1:1/none" in lines[0]
    assert "s3cret" not in caplog.text
