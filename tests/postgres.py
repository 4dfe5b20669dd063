"""A PostgreSQL database for the tests that need one.

The server is named by ``AUTOMATIONS_TEST_PG`` (a libpq URL; ``.ci/run`` starts one and sets
it). Without it these tests are skipped, except under ``CI=true``, where they fail: a green CI
must not hide skipped PostgreSQL tests.

Each test gets a schema of its own (dropped afterwards) and a URL whose ``search_path`` points
at it, so tests never see each other's tables and need no database to be created.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

__all__ = ["ENV", "fresh_schema", "server_url"]

ENV = "AUTOMATIONS_TEST_PG"


def server_url() -> str:
    """The test server's URL; skips the test (fails it under ``CI=true``) when none is set."""
    url = os.environ.get(ENV, "")
    if url:
        return url
    reason = f"no PostgreSQL server for the tests: set {ENV} to a postgresql:// URL"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run, not be skipped)")
    pytest.skip(reason)


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` (libpq's ``options`` parameter)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A new, empty schema on the test server, as a URL; dropped at the end."""
    import psycopg

    base = server_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    try:
        yield with_schema(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


_shared: dict[str, str] = {}


def emptied_store_url() -> str:
    """The URL of a schema shared by the tests of this process, migrated once and emptied
    (every table truncated, identities restarted) before each use: a fresh store for a few
    milliseconds instead of a new schema per test."""
    import psycopg

    from automations.stores.postgres import migrate

    url = _shared.get("url")
    if url is None:
        base = server_url()
        schema = f"t_shared_{uuid.uuid4().hex[:8]}"
        url = with_schema(base, schema)
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}".encode())
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        _shared["url"] = url
        _shared["schema"] = schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE runs, steps, state, audit, rate_limits, leaders RESTART IDENTITY")
    return url


def drop_shared_schema() -> None:
    """Drop the shared schema (at the end of the session)."""
    import psycopg

    schema = _shared.pop("schema", None)
    if schema is not None:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())
