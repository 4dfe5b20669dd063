"""Which process a PostgreSQL connection belongs to: every connection of a store shows its
``application_name`` (a runner's is ``automations:<node>``), so an operator can tell the nodes
apart in ``pg_stat_activity`` and end one node's connections; a name the URL or ``PGAPPNAME``
gives wins."""

from __future__ import annotations

import psycopg
import pytest

from automations.stores import open_store
from automations.stores.postgres import PostgresStore
from tests.postgres import fresh_schema

pytestmark = pytest.mark.integration


def _names(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND application_name LIKE 'automations%%' ORDER BY 1"
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_every_connection_of_a_runner_store_shows_its_node() -> None:
    with fresh_schema() as url:
        store = open_store(url, application_name="automations:node-a:123:abcdef")
        try:
            assert isinstance(store, PostgresStore)
            assert store.application_name == "automations:node-a:123:abcdef"
            store.get_state("scope", "key")  # a pooled connection
            assert "automations:node-a:123:abcdef" in _names(url)
            assert all(n == "automations:node-a:123:abcdef" for n in _names(url))
        finally:
            store.close()


def test_a_cli_store_is_automations() -> None:
    with fresh_schema() as url:
        store = open_store(url)
        try:
            assert isinstance(store, PostgresStore)
            store.get_state("scope", "key")
            assert store.application_name == "automations"
            assert set(_names(url)) == {"automations"}
        finally:
            store.close()


def test_a_name_in_the_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_schema() as url:
        store = PostgresStore(url + "&application_name=billing-runner", application_name="x")
        try:
            store.get_state("scope", "key")
            assert store.application_name == "billing-runner"
            with psycopg.connect(url, autocommit=True) as conn:
                (n,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    ("billing-runner",),
                ).fetchone() or (0,)
            assert n >= 1
        finally:
            store.close()
        monkeypatch.setenv("PGAPPNAME", "from-the-environment")
        store = PostgresStore(url, application_name="x")
        try:
            assert store.application_name == "from-the-environment"
        finally:
            store.close()
