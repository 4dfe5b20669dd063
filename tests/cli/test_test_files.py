"""``NAME.test.yaml`` files are checked like recipes, by ``lint`` and by ``test``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.acceptance
Cli = Callable[..., subprocess.CompletedProcess[str]]

RECIPE = """name: lead
trigger:
  table: {path: leads.csv, key: Email}
only_run_if: "Phone != null"
actions:
  - loops.send_event: {email: /Email, eventName: signup}
"""

TESTS = """tests:
  - name: a lead with a phone
    row: {Email: a@example.com, Phone: "1"}
    expect:
      condition: true
      requests:
        - body: {email: a@example.com, eventName: signup}
"""


@pytest.fixture
def recipe_dir(tmp_path: Path) -> Path:
    (tmp_path / "leads.csv").write_text("Email,Phone\n")
    (tmp_path / "lead.yaml").write_text(RECIPE)
    return tmp_path


def test_results_point_at_the_test_file(cli: Cli, recipe_dir: Path) -> None:
    (recipe_dir / "lead.test.yaml").write_text(TESTS)
    res = cli("test", ".")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines() == [
        "PASS lead.test.yaml:2 lead: a lead with a phone",
        "1 passed, 0 failed",
    ]


def test_typos_in_a_test_file_fail_test_and_lint(cli: Cli, recipe_dir: Path) -> None:
    typo = TESTS.replace("condition:", "conditon:").replace("requests:", "request:")
    (recipe_dir / "lead.test.yaml").write_text(typo)
    res = cli("test", ".")
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[0] == (
        'lead.test.yaml:5:7: error: unknown key "conditon" in tests[0].expect '
        '(did you mean "condition"?) [SCH001]'
    )
    assert lines[3] == (
        'lead.test.yaml:6:7: error: unknown key "request" in tests[0].expect '
        '(did you mean "requests"?) [SCH001]'
    )
    assert lines[-1] == "0 passed, 0 failed"
    assert "PASS" not in res.stdout
    res = cli("lint", ".", "--format", "json", env={"LOOPS_API_KEY": "k"})
    assert res.returncode == 1
    assert '"code": "SCH001"' in res.stdout and '"file": "lead.test.yaml"' in res.stdout


def test_a_test_without_row_or_with_a_wrong_type(cli: Cli, recipe_dir: Path) -> None:
    (recipe_dir / "lead.test.yaml").write_text(
        "tests:\n  - name: x\n    expect: {condition: yes please}\n"
    )
    res = cli("test", ".")
    assert res.returncode == 1
    assert res.stdout.splitlines()[0] == (
        'lead.test.yaml:2:5: error: tests[0] is missing the required key "row" [SCH002]'
    )
    assert "lead.test.yaml:3:25: error: tests[0].expect.condition must be true or false" in (
        res.stdout
    )


def test_the_runner_is_not_stopped_by_a_broken_test_file(recipe_dir: Path) -> None:
    from automations.runner.registry import RecipeSet, reload

    (recipe_dir / "lead.test.yaml").write_text("tests:\n  - conditon: 1\n")
    loaded = reload(RecipeSet(), recipe_dir, {"LOOPS_API_KEY": "k"})
    assert list(loaded.by_name) == ["lead"]
    assert loaded.errors() == {}
