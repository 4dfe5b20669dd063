"""The hostile table files of ``tables/`` met by ``lint`` and by the runner: bounded time, a
diagnostic at the recipe's ``path`` for each, the well-behaved recipe unaffected."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, write_recipe
from tests.acceptance.runner_process import RunnerProcess, free_port, wait_until

pytestmark = pytest.mark.acceptance

CORPUS = Path(__file__).parent / "tables"
#: Every case is refused before anything is read: lint of the whole corpus must be quick.
LINT_BOUND_S = 20.0
#: The runner's resident memory after meeting the corpus (it never reads /dev/zero).
RSS_BOUND_MB = 250


def _corpus(tmp_path: Path) -> Path:
    recipes = tmp_path / "recipes"
    shutil.copytree(CORPUS, recipes)
    data = recipes / "data"
    os.mkfifo(data / "pipe.csv")
    os.symlink("/dev/zero", data / "zero.csv")
    (data / "export").write_text("Email\nleak@example.com\n")
    os.symlink("export", data / "export.csv")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "private.csv").write_text("Email\nprivate@example.com\n")
    return recipes


EXPECTED = [
    ("absolute.yaml", 4, 17, "TBL003"),
    ("dev-zero.yaml", 4, 17, "TBL003"),
    ("fifo.yaml", 4, 17, "TBL004"),
    ("no-suffix-link.yaml", 4, 17, "TBL004"),
    ("outside.yaml", 4, 17, "TBL003"),
]


def test_lint_meets_the_corpus_in_bounded_time(tmp_path: Path) -> None:
    recipes = _corpus(tmp_path)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "automations", "lint", str(recipes), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=LINT_BOUND_S,
        env={**os.environ, "LOOPS_API_KEY": "k"},
    )
    assert time.monotonic() - started < LINT_BOUND_S
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    found = sorted(
        (Path(d["file"]).name, d["line"], d["column"], d["code"])
        for d in json.loads(result.stdout)
        if d["severity"] == "error"
    )
    assert found == EXPECTED


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_the_runner_starts_refuses_each_case_and_runs_the_good_recipe(
    tmp_path: Path, fakes: Fakes
) -> None:
    recipes = _corpus(tmp_path)
    write_recipe(
        recipes,
        "swapped.yaml",
        """
        name: swapped
        trigger:
          table: {path: data/swapped.csv, key: Email}
        actions:
          - loops.send_event: {email: /Email, eventName: swapped}
        """,
    )
    (recipes / "data" / "swapped.csv").write_text("Email\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPS_", "AUTOMATIONS_"))}
    logs = tmp_path / "logs"
    logs.mkdir()
    runner = RunnerProcess(
        recipes, tmp_path / "automations.db", free_port(), env | fakes.env(), (), logs
    )
    runner.start()  # /healthz answers 200: every trigger started, none hung
    try:
        errors = runner.health()["errors"]
        assert sorted((f, [d["code"] for d in ds]) for f, ds in errors.items()) == [
            (name, [code]) for name, _, _, code in EXPECTED
        ]
        wait_until(lambda: len(fakes.loops_events()) == 3, "the good recipe's 3 rows")
        assert sorted(e["body"]["email"] for e in fakes.loops_events()) == [
            "ada@example.com",
            "alan@example.com",
            "grace@example.com",
        ]

        # a table replaced by a FIFO while the runner watches it: an error on that recipe
        swapped = recipes / "data" / "swapped.csv"
        swapped.unlink()
        os.mkfifo(swapped)
        fifo = (
            "swapped.csv is not a regular file (a FIFO); a table must be a plain .csv or "
            ".jsonl file"
        )
        wait_until(lambda: runner.health()["tables"] == {"swapped": fifo}, "the FIFO refused")
        assert runner.summary() == {"status": "ok", "recipes": 2, "errors": 6}
        # ... and by a link to /dev/zero: refused without reading it
        swapped.unlink()
        os.symlink("/dev/zero", swapped)
        wait_until(
            lambda: "outside the recipes directory" in runner.health()["tables"].get("swapped", ""),
            "the link to /dev/zero refused",
        )
        assert runner.proc is not None
        assert _rss_mb(runner.proc.pid) < RSS_BOUND_MB
        assert len(fakes.loops_events()) == 3
        assert "Traceback" not in runner.log
    finally:
        code = runner.stop()
        runner.client.close()
    assert code == 0
