"""What the PostgreSQL store adds to the contract: schema migrations under a lock (two nodes
starting together), a clear refusal of a newer schema or an unreachable server (the password
never shown), and locked reads inside a transaction."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from automations.errors import StoreError
from automations.stores import display_location, open_store
from automations.stores import postgres_sql as sql
from automations.stores.postgres import PostgresStore, masked_url, migrate
from tests.postgres import fresh_schema
from tests.stores.factories import make_run

pytestmark = pytest.mark.integration


def versions(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()


def test_a_new_database_gets_the_schema_once() -> None:
    with fresh_schema() as url:
        store = PostgresStore(url)
        store.close()
        PostgresStore(url).close()  # opening again migrates nothing
        assert versions(url) == [(v,) for v in range(1, sql.SCHEMA_VERSION + 1)]


def test_four_nodes_migrating_at_once_apply_each_version_once() -> None:
    with fresh_schema() as url:
        start = threading.Barrier(4)
        results: list[tuple[int, int]] = []
        errors: list[BaseException] = []

        def node() -> None:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    start.wait()
                    results.append(migrate(conn))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=node) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert sorted(results) == [(0, sql.SCHEMA_VERSION)] + [(sql.SCHEMA_VERSION,) * 2] * 3
        assert versions(url) == [(v,) for v in range(1, sql.SCHEMA_VERSION + 1)]
        store = PostgresStore(url)
        try:
            assert store.enqueue(make_run("r1"))[1] is True
        finally:
            store.close()


def test_a_newer_schema_is_refused() -> None:
    with fresh_schema() as url:
        PostgresStore(url).close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (99,))
        with pytest.raises(StoreError, match="has run store schema version 99; this version"):
            PostgresStore(url)


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = "postgresql://alice:s3cret-pw@127.0.0.1:1/automations?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert message.startswith(
        "cannot open run store postgresql://alice:***@127.0.0.1:1/automations"
    )
    assert "s3cret-pw" not in message


def test_a_url_libpq_cannot_parse_is_refused_without_its_password() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://alice:s3cret-pw@[bad/automations")
    assert str(caught.value).startswith("cannot open run store postgresql://***@[bad/automations:")
    assert "s3cret-pw" not in str(caught.value)


def test_urls_are_shown_with_the_password_masked() -> None:
    assert masked_url("postgresql://bob:pw@db:5432/x?sslmode=require") == (
        "postgresql://bob:***@db:5432/x?sslmode=require"
    )
    assert masked_url("postgresql://bob@db/x") == "postgresql://bob@db/x"
    assert display_location("postgres://u:p@h/d") == "postgres://u:***@h/d"
    assert display_location("runs.db") == "runs.db"
    assert masked_url("postgresql://u:pw@[bad/x") == "postgresql://***@[bad/x"


def test_open_store_picks_postgres_for_a_url() -> None:
    with fresh_schema() as url:
        store = open_store(url)
        try:
            assert isinstance(store, PostgresStore)
        finally:
            store.close()


def test_a_run_read_in_a_transaction_stays_locked_until_the_commit() -> None:
    """Two replays of one run from two processes: the second reads the run only after the
    first committed (as SQLite's BEGIN IMMEDIATE orders them)."""
    with fresh_schema() as url:
        a, b = PostgresStore(url), PostgresStore(url)
        try:
            a.enqueue(make_run("r1"))
            order: list[str] = []
            a_has_read = threading.Event()

            def second() -> None:
                a_has_read.wait(10)
                with b.transaction():
                    run = b.get_run("r1")
                    order.append(f"b read replayed_as={run.replayed_as}")

            t = threading.Thread(target=second)
            t.start()
            with a.transaction():
                a.get_run("r1")
                a_has_read.set()
                t.join(0.3)  # b is blocked on the row lock meanwhile
                order.append("a writes")
                a.update_run("r1", replayed_as="r2")
            t.join(10)
            assert order == ["a writes", "b read replayed_as=r2"]
        finally:
            a.close()
            b.close()


def test_a_version_1_database_is_upgraded_in_place() -> None:
    with fresh_schema() as url:
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute(sql.CREATE_VERSION_TABLE)
            for statement in sql.MIGRATIONS[0].split(";"):
                if statement.strip():
                    conn.execute(statement)  # type: ignore[call-overload]
            conn.execute(sql.RECORD_VERSION, (1,))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO runs (id, recipe, trigger, event_key, created_at, status) "
                "VALUES ('old', 'welcome', 'webhook', 'evt-1', 1.5, 'pending'), "
                "('cut-off', 'welcome', 'webhook', 'evt-2', 1.5, 'running')"
            )
        store = PostgresStore(url)
        try:
            assert versions(url) == [(v,) for v in range(1, sql.SCHEMA_VERSION + 1)]
            assert store.get_run("old").event_key == "evt-1"
            # left running by a version without leases: its (expired) lease is rescued at once
            assert store.rescue_expired() == {"cut-off": 0}
        finally:
            store.close()
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT lease_token, order_key FROM runs ORDER BY seq").fetchall()
            indexes = {
                name
                for (name,) in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'runs' "
                    "AND schemaname = current_schema()"
                )
            }
        assert rows == [(0, None), (0, None)]
        # version 5: the runs filters' indexes, in the order listed
        assert {
            "runs_listed",
            "runs_recipe_listed",
            "runs_status_listed",
            "runs_recipe_status_listed",
        } <= indexes
        assert not {"runs_created", "runs_recipe", "runs_status"} & indexes
