"""Property: however a CSV table is written (in chunks cut anywhere, even inside a quoted field or
a UTF-8 character) and however often the runner restarts, each row runs exactly once."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automations.model import TableSpec
from automations.triggers.table import TableReader
from tests.triggers.conftest import MemoryStateStore

_VALUES = st.text(max_size=12)
_ROWS = st.lists(st.tuples(_VALUES, _VALUES), max_size=12)


def _csv_bytes(rows: list[tuple[str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["id", "note", "other"])
    for index, (note, other) in enumerate(rows):
        writer.writerow([f"row{index}", note, other])
    return buffer.getvalue().encode("utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_ROWS, data=st.data())
def test_appended_csv_rows_each_run_exactly_once(
    rows: list[tuple[str, str]], data: st.DataObject
) -> None:
    content = _csv_bytes(rows)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(content)), max_size=8), label="cuts"))
    pieces = [content[a:b] for a, b in zip([0, *cuts], [*cuts, len(content)], strict=True)]
    restarts = data.draw(st.lists(st.booleans(), min_size=len(pieces), max_size=len(pieces)))
    state = MemoryStateStore()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        path.write_bytes(b"")
        spec = TableSpec(path=path, key="id")
        reader = TableReader(spec, state, "table:p")
        assert reader.activate() == []
        seen: list[tuple[str, dict[str, str]]] = []
        for piece, restart in zip(pieces, restarts, strict=True):
            with open(path, "ab") as handle:
                handle.write(piece)
            if restart:
                reader = TableReader(spec, state, "table:p")
            events = reader.scan()
            reader.commit(events)
            assert reader.problems == []
            seen.extend((event.key, event.row) for event in events)
    expected = [
        (f"row{index}", {"id": f"row{index}", "note": note, "other": other})
        for index, (note, other) in enumerate(rows)
    ]
    assert seen == expected
