"""The per-key state API (``triggers.table_state``) on its own: marks in the store, looked up one
batch at a time, and the rules that turn rows into events."""

from __future__ import annotations

from pathlib import Path

from automations.model import ExistingRows, TableSpec
from automations.stores import SQLiteStore
from automations.triggers.table_state import KeyedRow, RowRules, RowStates, revision_id
from tests.triggers.conftest import MemoryStateStore

SCOPE = "table:t"


class CountingState(MemoryStateStore):
    """Counts the batched lookups too."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def get_states(self, scope: str, keys: object) -> dict[str, str]:
        self.lookups += 1
        return super().get_states(scope, keys)  # type: ignore[arg-type]


def _rows(*pairs: tuple[str, str]) -> list[KeyedRow]:
    return [KeyedRow(k, {"id": k, "v": v}, line) for line, (k, v) in enumerate(pairs, start=2)]


def test_new_changed_and_unchanged_rows_one_lookup_per_batch() -> None:
    state = CountingState()
    states = RowStates(state, SCOPE, 0, {"id", "v"}, RowRules(run_on_updated=True))
    first = states.compare(_rows(("a", "1"), ("b", "1")))
    assert [(e.dedupe_key, e.updated, e.line) for e in first.events] == [
        ("a", False, 2),
        ("b", False, 3),
    ]
    assert sorted(first.changes.values()) == sorted(
        f"{states.digest(r.row)}.0" for r in _rows(("a", "1"), ("b", "1"))
    )
    states.record(first.changes, [("meta", "{}")])
    assert state.transactions == 1
    assert set(state.data[SCOPE]) == {"meta", "k0:a", "k0:b"}
    second = states.compare(_rows(("a", "2"), ("b", "1"), ("c", "1")))
    digest = states.digest({"id": "a", "v": "2"})
    assert [(e.dedupe_key, e.updated) for e in second.events] == [
        (f"a@{revision_id(digest, 1)}", True),
        ("c", False),
    ]
    assert second.changes["a"] == f"{digest}.1"
    assert "b" not in second.changes
    assert state.lookups == 2


def test_a_value_changed_back_is_a_new_revision() -> None:
    state = MemoryStateStore()
    states = RowStates(state, SCOPE, 0, None, RowRules(run_on_updated=True))
    keys = []
    for value in ("A", "B", "A"):
        compared = states.compare(_rows(("a", value)))
        states.record(compared.changes)
        keys.extend(e.dedupe_key for e in compared.events)
    assert len(keys) == 3 and len(set(keys)) == 3
    assert state.data[SCOPE]["k0:a"].endswith(".2")


def test_unread_columns_quiet_and_activation_record_silently() -> None:
    state = MemoryStateStore()
    states = RowStates(state, SCOPE, 0, {"id"}, RowRules(run_on_updated=True, run_existing=True))
    compared = states.compare(_rows(("a", "1")), activating=True)
    assert [e.dedupe_key for e in compared.events] == ["a"]
    states.record(compared.changes)
    # only "v" changed, which is not read: nothing
    assert states.compare(_rows(("a", "2"))).changes == {}
    reader_of_v = RowStates(state, SCOPE, 0, {"id", "v"}, RowRules(run_on_updated=True))
    quiet = reader_of_v.compare(_rows(("a", "2")), quiet=True)
    assert (quiet.events, list(quiet.changes)) == ([], ["a"])
    # a key met again during the same activation is recorded, not run twice
    again = reader_of_v.compare(_rows(("a", "3")), activating=True)
    assert (again.events, list(again.changes)) == ([], ["a"])


def test_last_version_of_a_key_wins_within_a_batch_and_pending_marks_count() -> None:
    state = MemoryStateStore()
    states = RowStates(state, SCOPE, 0, None, RowRules(run_on_updated=True))
    compared = states.compare(_rows(("a", "1"), ("b", "1"), ("a", "2")))
    assert [(e.key, e.row["v"], e.line) for e in compared.events] == [("b", "1", 3), ("a", "2", 4)]
    # not recorded yet, but an earlier batch of the same scan: "a" is known, unchanged
    later = states.compare(_rows(("a", "2")), pending=compared.changes)
    assert (later.events, later.changes) == ([], {})


def test_generations_do_not_see_each_other() -> None:
    state = MemoryStateStore()
    RowStates(state, SCOPE, 0, None, RowRules()).record({"a": "0123456789abcdef.0"})
    fresh = RowStates(state, SCOPE, 1, None, RowRules())
    assert fresh.marks(["a"]) == {}
    assert [e.key for e in fresh.compare(_rows(("a", "1"))).events] == ["a"]


def test_rules_follow_the_spec() -> None:
    spec = TableSpec(
        path=Path("t.csv"),
        key="id",
        run_on_added=False,
        run_on_updated=True,
        existing_rows=ExistingRows.RUN,
    )
    assert RowRules.of(spec) == RowRules(False, True, True)


def test_a_million_keys_stay_in_sqlite(tmp_path: Path) -> None:
    """The marks live in the store's ``state`` table: a batch is looked up there, not loaded."""
    store = SQLiteStore(tmp_path / "runs.db")
    states = RowStates(store, SCOPE, 0, None, RowRules())
    for start in range(0, 20_000, 5_000):
        batch = _rows(*((f"u{i}", "x") for i in range(start, start + 5_000)))
        states.record(states.compare(batch).changes)
    assert states.compare(_rows(("u17", "x"), ("u19999", "x"))).events == []
    assert len(states.marks([f"u{i}" for i in range(0, 20_000, 7)])) == 2858
    store.close()


def test_an_overridden_digest_is_used_for_whole_rows_too() -> None:
    """Database tables hash rows their own way (``digest`` overridden): the whole-row shortcut
    (one SHA-256 for the mark and the event) must not bypass it."""

    class Lengths(RowStates):
        def digest(self, row: object) -> str:
            return f"{len(str(row)):016x}"

    state = MemoryStateStore()
    states = Lengths(state, SCOPE, 0, None, RowRules())
    states.record(states.compare(_rows(("a", "1"))).changes)
    assert state.data[SCOPE]["k0:a"] == f"{len(str({'id': 'a', 'v': '1'})):016x}.0"
