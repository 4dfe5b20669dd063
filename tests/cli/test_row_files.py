"""``--row @file`` (render, exec) is read as an event is: a regular file of at most 1 MiB (the
webhook body limit), so a FIFO, a device or a huge file is a usage error at once, never a hang
or a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import REPO

pytestmark = pytest.mark.acceptance
Cli = Callable[..., subprocess.CompletedProcess[str]]

LEAD = str(REPO / "recipes" / "new-lead-to-quo.yaml")
LIMIT = 1 << 20
ROW = {"Email": "ada@example.com", "First Name": "Ada", "Phone": "(555) 555-0100"}


def _padded(size: int) -> str:
    """A JSON row of exactly ``size`` bytes."""
    empty = json.dumps({**ROW, "Notes": ""})
    return json.dumps({**ROW, "Notes": "x" * (size - len(empty))})


def _usage_error(res: subprocess.CompletedProcess[str], message: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert f"Invalid value for --row: {message}" in res.stderr


def test_a_row_file_of_exactly_the_limit_is_read(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "row.json").write_text(_padded(LIMIT))
    assert (tmp_path / "row.json").stat().st_size == LIMIT
    res = cli("render", LEAD, "--row", "@row.json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["steps"][1]["request"]["body"]["to"] == ["+15555550100"]


def test_a_row_file_over_the_limit_is_refused(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "row.json").write_text(_padded(LIMIT + 1))
    res = cli("render", LEAD, "--row", "@row.json")
    _usage_error(res, "row.json is larger than 1 MiB, the limit for an event (a webhook's body)")


def test_a_huge_sparse_row_file_is_refused_without_reading_it(cli: Cli, tmp_path: Path) -> None:
    with (tmp_path / "huge.json").open("wb") as f:
        f.truncate(8 << 30)  # 8 GiB of holes: reading it whole would exhaust memory
    res = cli("exec", LEAD, "--row", "@huge.json", "--dry-run", "--db", "a.db")
    _usage_error(res, "huge.json is larger than 1 MiB, the limit for an event (a webhook's body)")


def test_standard_input_over_the_limit_is_refused(cli: Cli) -> None:
    res = cli("render", LEAD, "--row", "@-", input=_padded(LIMIT + 1))
    _usage_error(
        res, "standard input is larger than 1 MiB, the limit for an event (a webhook's body)"
    )
    ok = cli("render", LEAD, "--row", "@-", input=json.dumps(ROW))
    assert ok.returncode == 0, ok.stderr


def test_a_fifo_is_refused_at_once(cli: Cli, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.json")  # opened for a blocking read, it would wait for ever
    res = cli("render", LEAD, "--row", "@pipe.json")
    _usage_error(res, "cannot read pipe.json: it is a FIFO (named pipe), not a regular file")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("/dev/zero", "it is a character device, not a regular file"),
        (".", "it is a directory, not a regular file"),
        ("missing.json", "No such file or directory"),
    ],
)
def test_what_is_not_a_regular_file_is_refused(cli: Cli, name: str, why: str) -> None:
    res = cli("render", LEAD, "--row", f"@{name}")
    _usage_error(res, f"cannot read {name}: {why}")


def test_a_row_file_that_is_not_utf8_is_refused(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "row.json").write_bytes(b'{"Email": "a\xff@example.com"}')
    res = cli("render", LEAD, "--row", "@row.json")
    _usage_error(res, "row.json is not UTF-8 (byte 12)")
