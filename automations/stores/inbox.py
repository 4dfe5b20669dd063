"""The intake process's ``Inbox`` for a run store location (``automations/intake``)."""

from __future__ import annotations

from collections.abc import Sequence

from automations.ports import Inbox, Store
from automations.records import RunRecord, RunStatus
from automations.stores import is_postgres_url

__all__ = ["StoreInbox", "open_inbox"]


class StoreInbox(Inbox):
    """Records into a shared store's ``runs`` directly (PostgreSQL: one writer waits for another
    only on the same rows), unclaimed, and wakes the nodes that listen."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, items: Sequence[tuple[RunRecord, str | None]]) -> list[tuple[RunRecord, bool]]:
        results = self.store.enqueue_claimed(
            [(run, key, False) for run, key in items], "intake", ttl_s=0.0
        )
        if any(new and run.status is RunStatus.PENDING for run, new, _ in results):
            self.store.notify_pending()
        return [(run, new) for run, new, _ in results]

    def close(self) -> None:
        self.store.close()


def open_inbox(location: str, *, application_name: str = "automations:intake") -> Inbox:
    """The inbox of the run store at ``location``: its inbox file for a SQLite file (the runner
    created it), the store itself for PostgreSQL."""
    if is_postgres_url(location):
        from automations.stores.postgres import PostgresStore

        # one connection: the intake process records on one thread, a commit at a time
        return StoreInbox(PostgresStore(location, application_name=application_name, pool_size=1))
    from automations.stores.sqlite_inbox import SQLiteInbox

    return SQLiteInbox(location)
