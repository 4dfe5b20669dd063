from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from automations.model import ExistingRows, TableSpec
from automations.triggers.table import TableEvent, TableProblem, TableReader
from automations.triggers.table_records import table_format
from tests.triggers.conftest import MemoryStateStore

SCOPE = "table:welcome"


def _spec(path: Path, **kw: object) -> TableSpec:
    return TableSpec(path=path, key=str(kw.pop("key", "email")), **kw)  # type: ignore[arg-type]


def _append(path: Path, text: str) -> None:
    with open(path, "ab") as handle:
        handle.write(text.encode())


def _keys(events: list[TableEvent]) -> list[str]:
    return [event.dedupe_key for event in events]


def _run(reader: TableReader, **kw: bool) -> list[TableEvent]:
    """scan + commit, as the runner does once the events are enqueued."""
    events = reader.scan(**kw)
    reader.commit(events)
    return events


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    path = tmp_path / "leads.csv"
    path.write_text("email,name\na@x.io,Ann\n")
    return path


def test_csv_existing_rows_skip_then_append(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path), state, SCOPE)
    assert reader.activated is False
    assert reader.activate() == []
    assert reader.activated is True
    assert state.transactions == 1  # skip activation is committed at once
    _append(csv_path, "b@x.io,Bob\nc@x.io,Cy\n")
    events = reader.scan()
    assert [(e.key, e.row, e.line, e.updated) for e in events] == [
        ("b@x.io", {"email": "b@x.io", "name": "Bob"}, 3, False),
        ("c@x.io", {"email": "c@x.io", "name": "Cy"}, 4, False),
    ]
    assert _keys(events) == ["b@x.io", "c@x.io"]
    assert len(events[0].content_hash) == 64
    reader.commit(events)
    assert state.transactions == 2
    assert reader.scan() == []


def test_existing_rows_run(csv_path: Path, state: MemoryStateStore) -> None:
    spec = _spec(csv_path, existing_rows=ExistingRows.RUN)
    reader = TableReader(spec, state, SCOPE)
    events = reader.activate()
    assert _keys(events) == ["a@x.io"]
    assert state.transactions == 0  # nothing persisted until the runner commits
    # A crash before commit: a fresh reader produces the same events again.
    again = TableReader(spec, state, SCOPE).activate()
    assert again == events
    reader.commit(events)
    assert reader.activated is True
    assert TableReader(spec, state, SCOPE).activate() == []


def test_scan_is_repeatable_until_commit(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path), state, SCOPE)
    reader.activate()
    _append(csv_path, "b@x.io,Bob\n")
    first = reader.scan()
    _append(csv_path, "c@x.io,Cy\n")
    second = reader.scan()
    assert _keys(first) == ["b@x.io"]
    assert _keys(second) == ["b@x.io", "c@x.io"]
    with pytest.raises(ValueError, match="exactly the events of the latest scan"):
        reader.commit(first)
    reader.commit(second)
    assert reader.scan() == []


def test_half_written_line_waits(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path), state, SCOPE)
    reader.activate()
    _append(csv_path, "b@x.io,Bo")
    assert _run(reader) == []
    _append(csv_path, "b\nc@x.io,")
    events = _run(reader)
    assert [(e.key, e.row["name"]) for e in events] == [("b@x.io", "Bob")]
    _append(csv_path, "Cy\n")
    assert [(e.key, e.row["name"], e.line) for e in _run(reader)] == [("c@x.io", "Cy", 4)]


def test_open_quoted_field_waits(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path), state, SCOPE)
    reader.activate()
    _append(csv_path, 'b@x.io,"Bob\nthe second line')
    assert _run(reader) == []
    _append(csv_path, '"\nc@x.io,Cy\n')
    events = _run(reader)
    assert [(e.key, e.row["name"], e.line) for e in events] == [
        ("b@x.io", "Bob\nthe second line", 3),
        ("c@x.io", "Cy", 5),
    ]


def test_settled_reads_last_row_without_newline(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path), state, SCOPE)
    reader.activate()
    _append(csv_path, "b@x.io,Bob")
    assert _run(reader) == []
    assert _keys(_run(reader, settled=True)) == ["b@x.io"]
    # The writer goes on: the row is read again, complete, and does not run twice.
    _append(csv_path, "\nc@x.io,Cy\n")
    assert _keys(_run(reader)) == ["c@x.io"]


def test_missing_key_is_reported_not_fatal(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path), state, SCOPE)
    reader.activate()
    _append(csv_path, ",Nobody\nb@x.io,Bob\n   ,Blank\n")
    events = _run(reader)
    assert _keys(events) == ["b@x.io"]
    assert reader.problems == [
        TableProblem(3, "key column 'email' is empty"),
        TableProblem(5, "key column 'email' is empty"),
    ]


def test_key_column_absent_from_the_header_is_an_error(
    tmp_path: Path, state: MemoryStateStore
) -> None:
    path = tmp_path / "t.csv"
    path.write_text("name\nAnn\n")
    reader = TableReader(_spec(path, existing_rows=ExistingRows.RUN), state, SCOPE)
    assert reader.activate() == []
    assert reader.problems == []
    assert reader.error == (
        'the header of t.csv has no column "email", which the recipe reads (renamed or '
        "removed?); nothing runs for this recipe until the header has it again"
    )
    assert reader.activated is False  # nothing committed


def test_key_absent_from_a_jsonl_record(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"name": "Ann"}\n')
    reader = TableReader(_spec(path, existing_rows=ExistingRows.RUN), state, SCOPE)
    assert reader.activate() == []
    assert reader.problems == [TableProblem(1, "no value for key column 'email'")]


def test_csv_row_shapes(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"\xef\xbb\xbf email , name ,plan\r\n"
        b"a@x.io,Ann\r\n"
        b"\r\n"
        b"b@x.io,Bob,pro,\r\n"
        b"c@x.io,Cy,pro,extra\r\n"
    )
    reader = TableReader(_spec(path, existing_rows=ExistingRows.RUN), state, SCOPE)
    events = reader.activate()
    assert [(e.row, e.line) for e in events] == [
        ({"email": "a@x.io", "name": "Ann", "plan": ""}, 2),
        ({"email": "b@x.io", "name": "Bob", "plan": "pro"}, 4),
    ]
    assert reader.problems == [TableProblem(5, "4 values but the header has 3 columns")]


def test_every_change_runs_even_back_to_an_earlier_value(
    tmp_path: Path, state: MemoryStateStore
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"email": "a@x.io", "score": 1}\n')
    spec = _spec(path, run_on_updated=True)
    reader = TableReader(spec, state, SCOPE)
    reader.activate()
    _append(path, '{"email": "a@x.io", "score": 2}\n')
    updated = _run(reader)
    assert [(e.key, e.row["score"], e.updated) for e in updated] == [("a@x.io", 2, True)]
    assert updated[0].dedupe_key.startswith("a@x.io@")
    assert len(updated[0].dedupe_key) == len("a@x.io@") + 16
    # The same content again (key order differs) is not a change.
    _append(path, '{"score": 2, "email": "a@x.io"}\n')
    assert _run(reader) == []
    # Back to the first content (A -> B -> A) is a change: it runs; and B again runs again.
    seen = [updated[0].dedupe_key]
    for score in (1, 2):
        _append(path, f'{{"email": "a@x.io", "score": {score}}}\n')
        again = _run(reader)
        assert [e.row["score"] for e in again] == [score]
        assert again[0].dedupe_key not in seen
        seen.append(again[0].dedupe_key)
    assert state.all_state(SCOPE)["k0:a@x.io"].endswith(".3")


def test_updates_ignored_unless_asked(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path), state, SCOPE)
    reader.activate()
    csv_path.write_text("email,name\na@x.io,Annie\n")
    assert _run(reader) == []
    # ...but the new content is recorded: switching updates on later does not re-run it.
    reader2 = TableReader(_spec(csv_path, run_on_updated=True), state, SCOPE)
    assert reader2.scan() == []


def test_columns_projection_and_hash(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"email": "a@x.io", "n": 1, "noise": "x"}\n')
    spec = _spec(path, columns=("email", "n", "absent"), run_on_updated=True)
    reader = TableReader(spec, state, SCOPE)
    reader.activate()
    _append(path, '{"email": "b@x.io", "n": 2, "noise": "y"}\n')
    assert [e.row for e in _run(reader)] == [{"email": "b@x.io", "n": 2, "absent": None}]
    # A change in a column outside the projection is not an update.
    _append(path, '{"email": "b@x.io", "n": 2, "noise": "z"}\n')
    assert _run(reader) == []


def test_changing_columns_rebaselines_without_update_runs(
    tmp_path: Path, state: MemoryStateStore
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"email": "a@x.io", "n": 1, "m": 1}\n')
    TableReader(_spec(path, columns=("email", "n"), run_on_updated=True), state, SCOPE).activate()
    _append(path, '{"email": "b@x.io", "n": 2, "m": 2}\n')
    reader = TableReader(_spec(path, columns=("email", "m"), run_on_updated=True), state, SCOPE)
    assert _keys(_run(reader)) == ["b@x.io"]
    _append(path, '{"email": "a@x.io", "n": 1, "m": 5}\n')
    assert [e.row for e in _run(reader)] == [{"email": "a@x.io", "m": 5}]


def test_changing_key_column_is_a_new_activation(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,email\n1,a@x.io\n")
    TableReader(_spec(path, key="email"), state, SCOPE).activate()
    reader = TableReader(_spec(path, key="id", existing_rows=ExistingRows.RUN), state, SCOPE)
    assert reader.activated is False
    events = reader.activate()
    assert _keys(events) == ["1"]
    reader.commit(events)
    assert TableReader(_spec(path, key="id"), state, SCOPE).scan() == []


def test_jsonl_types_and_problems(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("")
    reader = TableReader(_spec(path, key="id"), state, SCOPE)
    reader.activate()
    _append(
        path,
        '{"id": 7, "tags": ["a"], "ok": true, "n": 1.5}\n'
        "\n"
        '{"id": "x",\n'
        "[1, 2]\n"
        '{"id": true}\n'
        '{"id": "8", "v": null}\r\n',
    )
    events = _run(reader)
    assert [(e.key, e.row, e.line) for e in events] == [
        ("7", {"id": 7, "tags": ["a"], "ok": True, "n": 1.5}, 1),
        ("8", {"id": "8", "v": None}, 6),
    ]
    assert reader.problems == [
        TableProblem(
            3, "invalid JSON: Expecting property name enclosed in double quotes (column 12)"
        ),
        TableProblem(4, "expected a JSON object, got an array"),
        TableProblem(5, "key column 'id' must be a string or an integer"),
    ]


def test_restart_neither_reruns_nor_misses(csv_path: Path, state: MemoryStateStore) -> None:
    spec = _spec(csv_path)
    first = TableReader(spec, state, SCOPE)
    first.activate()
    _append(csv_path, "b@x.io,Bob\n")
    assert _keys(_run(first)) == ["b@x.io"]
    # The runner stops; rows arrive meanwhile; a new process builds a new reader.
    _append(csv_path, "c@x.io,Cy\nd@x.io,Di\n")
    second = TableReader(spec, state, SCOPE)
    assert second.activated is True
    events = second.activate()
    assert [(e.key, e.line) for e in events] == [("c@x.io", 4), ("d@x.io", 5)]
    second.commit(events)
    assert TableReader(spec, state, SCOPE).activate() == []


def test_crash_between_scan_and_commit_reproduces_events(
    csv_path: Path, state: MemoryStateStore
) -> None:
    spec = _spec(csv_path)
    TableReader(spec, state, SCOPE).activate()
    _append(csv_path, "b@x.io,Bob\n")
    lost = TableReader(spec, state, SCOPE).scan()  # enqueued, then the process died
    assert TableReader(spec, state, SCOPE).scan() == lost


def test_file_rewritten_by_export(csv_path: Path, state: MemoryStateStore) -> None:
    spec = _spec(csv_path, run_on_updated=True)
    reader = TableReader(spec, state, SCOPE)
    _append(csv_path, "b@x.io,Bob\n")
    reader.activate()
    # The exporter replaces the file: rows reordered, one edited, one removed, one new, and the
    # new file is longer than the old one (so only the content check can tell).
    replacement = csv_path.with_suffix(".tmp")
    replacement.write_text("email,name\nb@x.io,Bob\nc@x.io,Cy\na@x.io,Ann Lee\n")
    os.replace(replacement, csv_path)
    events = _run(reader)
    assert [(e.key, e.updated, e.line) for e in events] == [
        ("c@x.io", False, 3),
        ("a@x.io", True, 4),
    ]
    # Truncated in place and refilled (an exporter writing in place): nothing re-runs.
    csv_path.write_text("")
    assert _run(reader) == []
    csv_path.write_text("email,name\nb@x.io,Bob\n")
    assert _run(reader) == []
    csv_path.write_text("email,name\nb@x.io,Bob\nc@x.io,Cy\na@x.io,Ann Lee\nd@x.io,Di\n")
    assert _keys(_run(reader)) == ["d@x.io"]


def test_same_size_edit_in_place_is_seen(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path, run_on_updated=True), state, SCOPE)
    _append(csv_path, "b@x.io,Bob\n")
    reader.activate()
    with open(csv_path, "r+b") as handle:
        handle.seek(len("email,name\na@x.io,"))
        handle.write(b"Amy")
        handle.seek(0, os.SEEK_END)
        handle.write(b"c@x.io,Cy\n")
    events = _run(reader)
    assert [(e.key, e.row["name"], e.updated) for e in events] == [
        ("a@x.io", "Amy", True),
        ("c@x.io", "Cy", False),
    ]


def test_duplicate_keys_last_version_wins(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"email": "a@x.io", "v": 1}\n{"email": "b@x.io", "v": 1}\n')
    path.write_text(path.read_text() + '{"email": "a@x.io", "v": 2}\n')
    reader = TableReader(_spec(path, existing_rows=ExistingRows.RUN), state, SCOPE)
    events = reader.activate()
    assert [(e.key, e.row["v"], e.line) for e in events] == [("b@x.io", 1, 2), ("a@x.io", 2, 3)]


def test_missing_file_defers_activation(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "later.csv"
    reader = TableReader(_spec(path), state, SCOPE)
    assert reader.activate() == []
    assert reader.problems == [TableProblem(0, f"table file {path} does not exist")]
    assert reader.activated is False
    path.write_text("email,name\na@x.io,Ann\n")
    assert reader.scan() == []  # the rows there when the file appears are the existing rows
    assert reader.activated is True
    _append(path, "b@x.io,Bob\n")
    assert _keys(reader.scan()) == ["b@x.io"]


def test_unchanged_file_scans_without_writes(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path), state, SCOPE)
    reader.activate()
    before = state.transactions
    assert reader.scan() == []
    assert reader.scan() == []
    os.utime(csv_path, ns=(1, 1))  # touched, same content
    assert reader.scan() == []
    assert state.transactions == before


def test_invalid_utf8_is_replaced_and_reported(csv_path: Path, state: MemoryStateStore) -> None:
    reader = TableReader(_spec(csv_path), state, SCOPE)
    reader.activate()
    with open(csv_path, "ab") as handle:
        handle.write(b"b@x.io,Bj\xf6rn\nc@x.io,Cy\n")
    assert [e.row["name"] for e in _run(reader)] == ["Bj\ufffdrn", "Cy"]
    assert reader.problems == [TableProblem(3, "not valid UTF-8; invalid bytes replaced")]


def test_state_is_compact(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "big.csv"
    path.write_text("email,name\n" + "".join(f"u{i}@x.io,N{i}\n" for i in range(100_000)))
    reader = TableReader(_spec(path), state, SCOPE)
    assert reader.activate() == []
    stored = state.all_state(SCOPE)
    assert len(stored) == 100_001
    digest, dot, revision = stored["k0:u5@x.io"].partition(".")
    assert (digest.isalnum(), len(digest), dot, revision) == (True, 16, ".", "0")
    meta = json.loads(stored["meta"])
    assert meta["offset"] == path.stat().st_size
    assert meta["line"] == 100_002
    _append(path, "new@x.io,New\n")
    events = TableReader(_spec(path), state, SCOPE).scan()
    assert [(e.key, e.line) for e in events] == [("new@x.io", 100_002)]


def test_commit_without_scan() -> None:
    reader = TableReader(_spec(Path("x.csv")), MemoryStateStore(), SCOPE)
    reader.commit([])
    event = TableEvent("k", {}, "0" * 64, "k", 2)
    with pytest.raises(ValueError, match="no scan"):
        reader.commit([event])


def test_table_format() -> None:
    assert table_format(Path("a.CSV")) == "csv"
    assert table_format(Path("a.jsonl")) == "jsonl"
    assert table_format(Path("a.ndjson")) == "jsonl"
    with pytest.raises(ValueError, match=r"^unsupported table file 'a\.xlsx'"):
        table_format(Path("a.xlsx"))
