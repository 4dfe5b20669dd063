"""Table files read safely at run time: a FIFO, a device, a link out, a file over the limit are
the reader's ``error`` (never an exception, never a hang); fixed, reading resumes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from automations.errors import TableFileError
from automations.model import ExistingRows, TableSpec
from automations.triggers.table import TableReader
from automations.triggers.table_files import TableAccess, open_table
from tests.triggers.conftest import MemoryStateStore

SCOPE = "table:t"


def _reader(path: Path, state: MemoryStateStore, **kw: object) -> TableReader:
    spec = TableSpec(
        path=path,
        key="email",
        existing_rows=ExistingRows.RUN,
        roots=(path.parent,),
        **kw,  # type: ignore[arg-type]
    )
    return TableReader(spec, state, SCOPE)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path, state: MemoryStateStore) -> None:
    path = tmp_path / "t.csv"
    os.mkfifo(path)
    reader = _reader(path, state)
    assert reader.scan() == []
    assert reader.error == (
        "t.csv is not a regular file (a FIFO); a table must be a plain .csv or .jsonl file"
    )
    path.unlink()
    path.write_text("email\na@x.io\n")
    assert [e.key for e in reader.scan()] == ["a@x.io"]
    assert reader.error is None


def test_a_link_out_of_the_recipes_directory_is_refused(
    tmp_path: Path, state: MemoryStateStore
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "private.csv").write_text("email\nsecret@x.io\n")
    path = tmp_path / "in" / "t.csv"
    os.symlink(tmp_path / "private.csv", path)
    reader = _reader(path, state)
    assert reader.scan() == []
    assert reader.error is not None and "outside the recipes directory" in reader.error


def test_a_table_that_grows_past_the_limit_is_refused(
    tmp_path: Path, state: MemoryStateStore
) -> None:
    path = tmp_path / "t.csv"
    path.write_text("email\na@x.io\n")
    reader = _reader(path, state, max_bytes=1024)
    assert [e.key for e in reader.scan()] == ["a@x.io"]
    reader.commit(reader.scan())
    with open(path, "a") as handle:
        handle.write("".join(f"u{i}@x.io\n" for i in range(200)))
    assert reader.scan() == []
    assert reader.error == (
        "t.csv is larger than the 1024 bytes a table may be; split it, or raise "
        "$AUTOMATIONS_MAX_TABLE_MB"
    )


def test_open_table_refuses_a_device() -> None:
    with pytest.raises(TableFileError, match=r"null is not a regular file \(a device\)"):
        open_table(Path("/dev/null"), TableAccess())


def test_access_from_the_environment(tmp_path: Path) -> None:
    env = {
        "AUTOMATIONS_TABLES_OUTSIDE": f"{tmp_path}/a:{tmp_path}/b",
        "AUTOMATIONS_MAX_TABLE_MB": "2",
    }
    access = TableAccess.for_recipes(tmp_path / "r", env)
    assert access.roots == (tmp_path / "r", tmp_path / "a", tmp_path / "b")
    assert access.max_bytes == 2 * 1024 * 1024
    assert TableAccess.for_recipes(tmp_path, {"AUTOMATIONS_MAX_TABLE_MB": "x"}).max_bytes == (
        128 * 1024 * 1024
    )
