"""The webhook inbox of a SQLite run store (``stores/sqlite_inbox``): what the intake process
records is moved into ``runs`` once, with the id it answered, whatever the interleaving of the
two sides, a restart in between, or a fresh inbox file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from automations.execution.executor import new_run
from automations.records import RunRecord, RunStatus, TriggerKind
from automations.stores import SQLiteStore
from automations.stores.sqlite_inbox import InboxMover, SQLiteInbox, inbox_path


def _run(key: str, recipe: str = "hook") -> RunRecord:
    return new_run(recipe, TriggerKind.WEBHOOK, key, {"email": f"{key}@example.com"})


def _inbox_rows(db: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(inbox_path(db))
    try:
        return [(int(s), str(k)) for s, k in conn.execute("SELECT seq, event_key FROM inbox")]
    finally:
        conn.close()


def _runs(store: SQLiteStore) -> dict[str, str]:
    """Event key -> run id of every run in ``runs``."""
    return {str(k): str(i) for k, i in store._db.execute("SELECT event_key, id FROM runs")}


def _move_all(mover: InboxMover) -> tuple[dict[str, int], list[str]]:
    total: dict[str, int] = {}
    dropped: list[str] = []
    while True:
        moved, gone = mover.move(limit=7)
        if not moved and not gone:
            return total, dropped
        for recipe, n in moved.items():
            total[recipe] = total.get(recipe, 0) + n
        dropped += gone


def test_a_recorded_event_is_moved_once_with_the_id_it_was_answered_with(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    mover = InboxMover(store)
    inbox = SQLiteInbox(db)
    first = [_run("a"), _run("b")]
    answered = inbox.record([(r, "order-1" if r.event_key == "a" else None) for r in first])
    assert [(r.id, new) for r, new in answered] == [(first[0].id, True), (first[1].id, True)]
    assert _runs(store) == {}  # in the inbox, not moved yet

    assert mover.move() == ({"hook": 2}, [])
    moved = store.get_run(first[0].id)
    assert moved is not None
    assert (moved.status, moved.event, moved.event_key) == (
        RunStatus.PENDING,
        {"email": "a@example.com"},
        "a",
    )
    order = store._db.execute("SELECT order_key FROM runs WHERE id = ?", (first[0].id,))
    assert order.fetchone() == ("order-1",)
    assert mover.move() == ({}, [])
    inbox.close()
    store.close()


def test_a_repeated_delivery_gets_the_first_runs_id_before_and_after_the_move(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    mover = InboxMover(store)
    inbox = SQLiteInbox(db)
    original = _run("k1")
    [(_, new)] = inbox.record([(original, None)])
    assert new
    # twice in one batch, and again while the first waits in the inbox
    again = inbox.record([(_run("k1"), None), (_run("k1"), None)])
    assert [(r.id, n) for r, n in again] == [(original.id, False), (original.id, False)]
    mover.move()
    # after the move: found in runs
    [(later, new)] = inbox.record([(_run("k1"), None)])
    assert (later.id, new) == (original.id, False)
    assert mover.move() == ({}, [])
    assert store.unfinished_counts() == {"hook": 1}
    inbox.close()
    store.close()


def test_moved_rows_are_pruned_and_a_seq_is_never_given_twice(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    mover = InboxMover(store)
    inbox = SQLiteInbox(db)
    inbox.record([(_run(f"k{i}"), None) for i in range(5)])
    assert _move_all(mover) == ({"hook": 5}, [])
    # the next commit deletes what was moved, but the newest row (its seq must not come back)
    inbox.record([(_run("k5"), None)])
    assert _inbox_rows(db) == [(5, "k4"), (6, "k5")]
    assert _move_all(mover) == ({"hook": 1}, [])
    inbox.record([(_run("k6"), None)])
    assert _inbox_rows(db) == [(6, "k5"), (7, "k6")]
    assert _move_all(mover) == ({"hook": 1}, [])
    assert store.unfinished_counts() == {"hook": 7}
    inbox.close()
    store.close()


def test_rows_left_by_a_crash_are_moved_at_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    InboxMover(store)
    inbox = SQLiteInbox(db)
    runs = [_run(f"k{i}") for i in range(3)]
    inbox.record([(r, None) for r in runs])
    inbox.close()
    store.close()  # the runner stopped (or died) before moving them

    store = SQLiteStore(db)
    assert _move_all(InboxMover(store)) == ({"hook": 3}, [])
    assert _runs(store) == {r.event_key: r.id for r in runs}
    store.close()


def test_a_fresh_inbox_file_is_moved_from_its_beginning(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    mover = InboxMover(store)
    inbox = SQLiteInbox(db)
    inbox.record([(_run(f"old{i}"), None) for i in range(4)])
    _move_all(mover)
    inbox.close()
    store.close()
    # the inbox is deleted (a copy of the run store without it): its seqs start again at 1,
    # under the mark of the old inbox
    for suffix in ("", "-wal", "-shm"):
        Path(f"{inbox_path(db)}{suffix}").unlink(missing_ok=True)
    store = SQLiteStore(db)
    mover = InboxMover(store)
    inbox = SQLiteInbox(db)
    inbox.record([(_run("new0"), None), (_run("new1"), None)])
    assert _move_all(mover) == ({"hook": 2}, [])
    assert store.unfinished_counts() == {"hook": 6}
    inbox.close()
    store.close()


def test_a_row_whose_event_has_a_run_already_is_dropped_not_run_twice(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    mover = InboxMover(store)
    first = _run("same")
    store.enqueue(first)  # recorded by another path meanwhile
    inbox = SQLiteInbox(db)
    # the intake looked before it was there (a race): written into the inbox anyway
    late = _run("same")
    inbox._db.execute(
        "INSERT INTO inbox (id, recipe, trigger, event_key, event, created_at, status, "
        "dry_run) VALUES (?, 'hook', 'webhook', 'same', '{}', 0, 'pending', 0)",
        (late.id,),
    )
    assert _move_all(mover) == ({}, [late.id])
    assert _runs(store) == {"same": first.id}
    inbox.close()
    store.close()


def test_recording_and_moving_at_once_make_each_event_one_run(tmp_path: Path) -> None:
    """The intake (its own connections) and the runner's mover run concurrently; each event is
    delivered three times. Every answer names the one run of its event."""
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    mover = InboxMover(store)
    inbox = SQLiteInbox(db)
    events = 600
    answers: dict[str, set[str]] = {}
    done = threading.Event()

    def deliver() -> None:
        for rnd in range(3):
            for start in range(0, events, 20):
                batch = [(_run(f"e{i}"), None) for i in range(start, start + 20)]
                for run, _ in inbox.record(batch):
                    answers.setdefault(run.event_key, set()).add(run.id)
            del rnd
        done.set()

    def move() -> None:
        while not done.is_set():
            mover.move(limit=50)
        _move_all(mover)

    threads = [threading.Thread(target=deliver), threading.Thread(target=move)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stored = _runs(store)
    assert len(stored) == events
    assert all(answers[key] == {run_id} for key, run_id in stored.items())
    inbox.close()
    store.close()
