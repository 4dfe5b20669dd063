"""When one scan's runs are held (the flood brake): over ``flood_limit``, never with 0, never on
the first activation of ``existing_rows: run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from automations.model import ExistingRows, TableSpec
from automations.runner.sources import flooded
from automations.triggers.table import TableReader
from tests.triggers.conftest import MemoryStateStore


def _reader(tmp_path: Path, rows: int, **kw: object) -> tuple[TableSpec, TableReader, int]:
    path = tmp_path / "t.csv"
    path.write_text("email\n" + "".join(f"u{i}@x.io\n" for i in range(rows)))
    spec = TableSpec(path=path, key="email", **kw)  # type: ignore[arg-type]
    reader = TableReader(spec, MemoryStateStore(), "table:t")
    return spec, reader, len(reader.scan())


@pytest.mark.parametrize(
    ("limit", "count", "held"), [(100, 100, False), (100, 101, True), (0, 10_000, False)]
)
def test_more_than_the_limit_is_held(limit: int, count: int, held: bool) -> None:
    spec = TableSpec(path=Path("t.csv"), key="email", flood_limit=limit)
    reader = TableReader(spec, MemoryStateStore(), "table:t")
    assert flooded(spec, reader, count) is held


def test_the_first_activation_of_existing_rows_run_is_never_held(tmp_path: Path) -> None:
    spec, reader, count = _reader(tmp_path, 150, existing_rows=ExistingRows.RUN, flood_limit=10)
    assert (count, reader.activating) == (150, True)
    assert flooded(spec, reader, count) is False


def test_rows_appended_after_activation_are_held(tmp_path: Path) -> None:
    spec, reader, _ = _reader(tmp_path, 0, flood_limit=10)
    reader.commit([])
    with open(spec.path, "a") as handle:
        handle.write("".join(f"n{i}@x.io\n" for i in range(11)))
    events = reader.scan()
    assert (len(events), reader.activating) == (11, False)
    assert flooded(spec, reader, len(events)) is True
