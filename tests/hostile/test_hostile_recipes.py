"""The hostile recipe corpus meets ``automations lint`` (a subprocess under a 512 MiB
address-space cap and a timeout) and the runner (by hot reload): each case is one diagnostic
with its code and position, no traceback, and the runner keeps serving.

Before the limits, the billion-laughs file alone took lint to 4 GB and 28 s and a MemoryError.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.conftest import StartRunner, webhook_recipe, write_recipe

pytestmark = pytest.mark.acceptance

HOSTILE = Path(__file__).resolve().parent
#: Lint of a clean recipe needs about 150 MiB of address space; a bomb must not need more.
ADDRESS_SPACE = 512 * 1024 * 1024
TIMEOUT_S = 60

#: case -> (code, line, column) of its one error
EXPECTED = {
    "billion_laughs.yaml": ("LIM001", 4, 56),
    "alias_cycle.yaml": ("LIM001", 2, 18),
    "deep_flow_nesting.yaml": ("LIM002", 2, 1007),
    "deep_block_nesting.yaml": ("LIM002", 66, 129),
    "not_utf8.yaml": ("IO001", 1, 10),
}


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automations", "lint", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        preexec_fn=_capped,
    )


def test_every_case_is_listed_in_the_readme() -> None:
    readme = (HOSTILE / "README.md").read_text("utf-8")
    cases = sorted(p.name for p in HOSTILE.glob("*.yaml"))
    assert cases == sorted([*EXPECTED, "huge_integer.yaml"])
    assert all(f"`{case}`" in readme for case in cases)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_lint_reports_each_case_within_bounds(case: str) -> None:
    res = _lint(HOSTILE / case)
    assert "Traceback" not in res.stderr, res.stderr
    # a file that cannot be read leaves the check incomplete: 2
    assert res.returncode == (2 if EXPECTED[case][0] == "IO001" else 1), res.stderr
    found = [(d["code"], d["line"], d["column"]) for d in json.loads(res.stdout)]
    assert found == [EXPECTED[case]]


def test_lint_huge_integer_is_a_diagnostic() -> None:
    res = _lint(HOSTILE / "huge_integer.yaml")
    assert "Traceback" not in res.stderr, res.stderr
    found = [(d["code"], d["line"], d["column"]) for d in json.loads(res.stdout)]
    assert ("LIM004", 2, 8) in found


def test_lint_the_whole_corpus_at_once(tmp_path: Path) -> None:
    # text output too: its snippets read each file again, with the same bounds
    res = subprocess.run(
        [sys.executable, "-m", "automations", "lint", str(HOSTILE)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        preexec_fn=_capped,
    )
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 2  # not_utf8.yaml cannot be read
    for case, (code, line, column) in EXPECTED.items():
        assert f"{case}:{line}:{column}: error: " in res.stdout
        assert f"[{code}]" in res.stdout


GOOD = webhook_recipe("hello")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_runner_meets_the_corpus_by_hot_reload(
    recipes_dir: Path, start_runner: StartRunner
) -> None:
    write_recipe(recipes_dir, "hook.yaml", GOOD)
    runner = start_runner(recipes_dir)
    assert runner.proc is not None
    before = _peak_rss_mb(runner.proc.pid)
    for case in [*EXPECTED, "huge_integer.yaml"]:
        shutil.copy(HOSTILE / case, recipes_dir / case)
    # the good recipe's file is overwritten by the bomb: its last good version keeps running
    shutil.copy(HOSTILE / "billion_laughs.yaml", recipes_dir / "hook.yaml")
    deadline = time.monotonic() + 30
    while True:
        errors = {Path(f).name: ds for f, ds in runner.health()["errors"].items()}
        if len(errors) == len(EXPECTED) + 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    found = {name: [(d["code"], d["line"], d["column"]) for d in ds] for name, ds in errors.items()}
    assert found == {
        **{case: [where] for case, where in EXPECTED.items()},
        "hook.yaml": [EXPECTED["billion_laughs.yaml"]],
        "huge_integer.yaml": found.get("huge_integer.yaml", []),
    }
    assert ("LIM004", 2, 8) in found["huge_integer.yaml"]
    assert [r["name"] for r in runner.health()["recipes"]] == ["hook"]
    assert "Traceback" not in runner.log
    # loading the corpus cost the runner next to nothing (the bomb alone used to take 4 GB)
    assert _peak_rss_mb(runner.proc.pid) - before < 50, (before, _peak_rss_mb(runner.proc.pid))
