"""An ``updated`` row runs when a column the recipe reads changes, and only then; a read column
missing from the header stops the recipe until it is back; state from the previous release
carries over without re-sends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from automations.model import TableSpec
from automations.stores import SQLiteStore
from automations.triggers.table import TableEvent, TableReader
from tests.triggers.conftest import MemoryStateStore

SCOPE = "table:leads"
DATA = Path(__file__).parent / "data"
READS = frozenset({"Email", "Phone", "First Name"})


def _spec(path: Path, reads: frozenset[str] | None = READS) -> TableSpec:
    return TableSpec(path=path, key="Email", run_on_updated=True, reads=reads)


def _run(reader: TableReader) -> list[TableEvent]:
    events = reader.scan()
    reader.commit(events)
    return events


def _table(path: Path, header: str, rows: int, *, plan: str = "free", phone: str = "+1555") -> None:
    body = "".join(f"u{i}@x.io,User {i},{phone}{i:04d},{plan}\n" for i in range(rows))
    path.write_text(header + "\n" + body)


def test_unread_columns_changed_added_reordered_or_renamed_run_nothing(
    tmp_path: Path, state: MemoryStateStore
) -> None:
    path = tmp_path / "leads.csv"
    _table(path, "Email,First Name,Phone,Plan", 300)
    reader = TableReader(_spec(path), state, SCOPE)
    assert reader.activate() == []
    _table(path, "Email,First Name,Phone,Plan", 300, plan="pro")  # unread column changed
    assert _run(reader) == []
    path.write_text(path.read_text().replace("Plan", "Tier", 1))  # unread header renamed
    assert _run(reader) == []
    lines = path.read_text().splitlines()  # a column added, columns reordered
    reordered = [",".join([*reversed(line.split(",")), "x"]) for line in lines]
    path.write_text("\n".join(reordered).replace("x", "Added", 1) + "\n")
    assert _run(reader) == []
    assert reader.error is None


def test_a_read_column_change_runs_each_row_once(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "leads.csv"
    _table(path, "Email,First Name,Phone,Plan", 300)
    reader = TableReader(_spec(path), state, SCOPE)
    reader.activate()
    _table(path, "Email,First Name,Phone,Plan", 300, phone="+1666")
    events = _run(reader)
    assert len(events) == 300 and all(e.updated for e in events)
    assert len({e.dedupe_key for e in events}) == 300
    assert _run(reader) == []


def test_whole_row_readers_see_every_column(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "leads.csv"
    _table(path, "Email,First Name,Phone,Plan", 3)
    reader = TableReader(_spec(path, reads=None), state, SCOPE)
    reader.activate()
    _table(path, "Email,First Name,Phone,Plan", 3, plan="pro")
    assert len(_run(reader)) == 3


def test_a_renamed_read_column_stops_the_recipe_until_it_is_back(
    tmp_path: Path, state: MemoryStateStore
) -> None:
    path = tmp_path / "leads.csv"
    _table(path, "Email,First Name,Phone,Plan", 300)
    reader = TableReader(_spec(path), state, SCOPE)
    reader.activate()
    before = state.all_state(SCOPE)
    _table(path, "Email,First Name,Mobile,Plan", 301)  # Phone renamed, one row added
    assert _run(reader) == []
    assert reader.error == (
        'the header of leads.csv has no column "Phone", which the recipe reads (renamed or '
        "removed?); nothing runs for this recipe until the header has it again"
    )
    assert state.all_state(SCOPE) == before  # nothing committed
    assert reader.scan() == []  # the same file is not read again
    assert reader.error is not None
    # fixed: the added row runs; the 300 others did not change and stay quiet
    _table(path, "Email,First Name,Phone,Plan", 301)
    events = _run(reader)
    assert [(e.key, e.updated) for e in events] == [("u300@x.io", False)]
    assert reader.error is None


def test_a_changed_recipe_reading_other_columns_re_records_without_runs(
    tmp_path: Path, state: MemoryStateStore
) -> None:
    path = tmp_path / "leads.csv"
    _table(path, "Email,First Name,Phone,Plan", 5)
    TableReader(_spec(path), state, SCOPE).activate()
    reader = TableReader(_spec(path, reads=frozenset({"Email", "Plan"})), state, SCOPE)
    assert _run(reader) == []
    _table(path, "Email,First Name,Phone,Plan", 5, plan="pro")
    assert len(_run(reader)) == 5


def _legacy(tmp_path: Path) -> tuple[Path, SQLiteStore]:
    """The table and the state main's code (before per-column hashes) wrote for it: generated
    by running that release's ``TableReader`` (``existing_rows: skip``, ``run_on: [updated]``)
    over ``legacy_leads.csv``; see ``data/README.md``."""
    path = tmp_path / "legacy_leads.csv"
    shutil.copy(DATA / "legacy_leads.csv", path)
    store = SQLiteStore(tmp_path / "runs.db")
    store.set_state(SCOPE, json.loads((DATA / "legacy_state.json").read_text()).items())
    return path, store


def test_state_from_the_previous_release_re_sends_nothing(tmp_path: Path) -> None:
    path, store = _legacy(tmp_path)
    assert json.loads(store.all_state(SCOPE)["meta"])["v"] == 1
    reader = TableReader(_spec(path), store, SCOPE)
    assert reader.activated
    assert _run(reader) == []
    values = store.all_state(SCOPE)
    assert json.loads(values["meta"])["reads"] == ["Email", "First Name", "Phone"]
    assert all(v.endswith(".0") for k, v in values.items() if k.startswith("k0:"))
    # after the upgrade, an unread column's change runs nothing; a read one runs
    path.write_text(path.read_text().replace(",free,", ",pro,"))
    assert _run(reader) == []
    path.write_text(path.read_text().replace("User 7,", "Usher 7,"))
    assert [e.key for e in _run(reader)] == ["u7@example.com"]
    store.close()


def test_rows_changed_while_upgrading_still_run(tmp_path: Path) -> None:
    path, store = _legacy(tmp_path)
    path.write_text(path.read_text().replace("u3@example.com,User 3,", "u3@example.com,Ursula,"))
    events = _run(TableReader(_spec(path), store, SCOPE))
    assert [(e.key, e.updated) for e in events] == [("u3@example.com", True)]
    store.close()
