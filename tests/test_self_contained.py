"""The repository carries everything its tests, tools and package read: a clone works anywhere."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The folder beside the checkout that a user's clone does not have, spelled any way a path could.
# Its name is built from pieces so that this file, which names the rule, does not match it.
_NAME = "sha" + "red"
OUTSIDE = re.compile(rf"\.\./{_NAME}|{_NAME}/vendor|[\"']{_NAME}[\"']")


def test_no_file_reads_outside_the_repository() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("tests", "automations", "bench", "tools")
        for path in (REPO / folder).rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".json", ".yaml", ".yml", ".toml", ".sh", ".txt"}
        and OUTSIDE.search(path.read_text("utf-8", errors="replace"))
    ]
    assert offenders == []


def test_the_specs_the_tests_read_are_in_the_repository() -> None:
    for name in ("quo-openapi.json", "loops-openapi.json", "sarif-schema-2.1.0.json"):
        assert (REPO / "specs" / name).stat().st_size > 10_000
    assert "commit" in (REPO / "specs" / "README.md").read_text("utf-8")
