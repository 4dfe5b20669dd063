"""Run stores: where runs, their steps and the triggers' positions are kept.

- ``SQLiteStore``: one SQLite file (WAL), the default; readable with any SQLite tool.
- ``MemoryStore``: the same in memory, for tests and one-off runs.

Both implement ``RunStore`` and ``StateStore`` (``automations/ports.py``) and add
``transaction()``, which groups writes into one commit.
"""

from __future__ import annotations

from pathlib import Path

from automations.errors import StoreError
from automations.stores.memory import MemoryStore
from automations.stores.sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "open_store"]


def open_store(path: str | Path) -> SQLiteStore:
    """Open (creating it and its folder if needed) the SQLite run store at ``path``.

    ``~`` is expanded; ``":memory:"`` gives a private in-memory SQLite database.
    Raises ``StoreError`` when the file cannot be opened or is not a run store.
    """
    if str(path) == ":memory:":
        return SQLiteStore(":memory:")
    file = Path(path).expanduser()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for run store {file}: {exc}") from exc
    return SQLiteStore(file)
