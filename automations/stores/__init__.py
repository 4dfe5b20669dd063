"""Run stores: where runs, their steps and the triggers' positions are kept.

- ``SQLiteStore``: one SQLite file (WAL), the default; readable with any SQLite tool.
- ``PostgresStore``: a PostgreSQL database (a ``postgresql://`` URL), which several machines
  can reach (imported on first use: psycopg costs a tenth of a second to import).
- ``MemoryStore``: the same in memory, for tests and one-off runs.

All implement ``RunStore`` and ``StateStore`` (``automations/ports.py``) and add
``transaction()``, which groups writes into one commit. ``open_store`` picks one from what
``--db`` / ``AUTOMATIONS_DB`` says: every command opens its store through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from automations.errors import StoreError
from automations.ports import Store
from automations.stores.memory import MemoryStore
from automations.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from automations.stores.postgres import PostgresStore

__all__ = [
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "display_location",
    "is_postgres_url",
    "open_store",
]

_URL_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str | Path) -> bool:
    """Whether ``location`` (a ``--db`` value) names a PostgreSQL database."""
    return isinstance(location, str) and location.startswith(_URL_SCHEMES)


def display_location(location: str | Path) -> str:
    """``location`` as messages show it: a URL's password is masked."""
    if is_postgres_url(location):
        from automations.stores.postgres import masked_url

        return masked_url(str(location))
    return str(location)


def open_store(location: str | Path, *, application_name: str = "automations") -> Store:
    """Open the run store ``location`` names: a ``postgresql://`` URL (the schema is created or
    upgraded; its connections show ``application_name`` in ``pg_stat_activity`` unless the URL
    names one), else a SQLite file (created with its folder if needed; ``~`` is expanded;
    ``":memory:"`` gives a private in-memory SQLite database).

    Raises ``StoreError`` when the store cannot be opened or is not a run store.
    """
    if is_postgres_url(location):
        from automations.stores.postgres import PostgresStore

        return PostgresStore(str(location), application_name=application_name)
    if str(location) == ":memory:":
        return SQLiteStore(":memory:")
    file = Path(location).expanduser()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for run store {file}: {exc}") from exc
    return SQLiteStore(file)


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from automations.stores.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
