"""The pre-commit hooks as a team uses them. ``pre-commit try-repo`` builds the hooks'
environment from this checkout (a virtualenv and ``pip install``: the package index, nothing
else) and runs every hook in ``.pre-commit-hooks.yaml`` (the two docs/ci.md lists) on the staged
files of a team's repository, as a commit would.

try-repo takes the checkout's committed files plus its changes to tracked and staged files:
``git add`` a new module before running this from a working copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.skipif(
        shutil.which("git") is None or not (REPO / ".git").exists(),
        reason="needs git and a git checkout of the project",
    ),
]

RECIPE = """name: {name}
trigger:
  table: {{path: data/leads.csv, key: Email}}
actions:
  - http.request: {{method: POST, url: "https://hooks.example/lead", json: {{email: /{column}}}}}
"""
TESTS = """tests:
  - name: the email is posted
    row: {{Email: ada@example.com}}
    expect: {{requests: [{{body: {{email: {email}}}}}]}}
"""


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUO_", "LOOPS_", "MATON_", "AUTOMATIONS_", "GIT_", "PRE_COMMIT"))
    }
    return env | {
        "PRE_COMMIT_HOME": str(home / "pre-commit-cache"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _try_repo(team: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "pre_commit", "try-repo", str(REPO)], team, env)


def test_hooks_pass_a_good_commit_and_fail_a_broken_one(tmp_path: Path) -> None:
    team = tmp_path / "team"
    recipes = team / "recipes"
    (recipes / "data").mkdir(parents=True)
    env = _env(tmp_path)
    git = ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]
    assert _run([*git, "init", "-q"], team, env).returncode == 0
    (recipes / "data" / "leads.csv").write_text("Email\n")
    (recipes / "lead.yaml").write_text(RECIPE.format(name="lead", column="Email"))
    (recipes / "lead.test.yaml").write_text(TESTS.format(email="ada@example.com"))
    (team / "notes.yaml").write_text("not: a recipe\n")  # outside recipes/: not for the hooks
    assert _run([*git, "add", "-A"], team, env).returncode == 0

    good = _try_repo(team, env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "automations lint" in good.stdout and "automations test" in good.stdout
    assert good.stdout.count("Passed") == 2
    assert _run([*git, "commit", "-q", "-m", "recipes"], team, env).returncode == 0

    # the next commit: a broken recipe, and a changed test file staged without its recipe
    (recipes / "broken.yaml").write_text(RECIPE.format(name="broken", column="Emial"))
    (recipes / "lead.test.yaml").write_text(TESTS.format(email="grace@example.com"))
    assert _run([*git, "add", "-A"], team, env).returncode == 0
    bad = _try_repo(team, env)
    assert bad.returncode == 1
    assert bad.stdout.count("Failed") == 2

    # the hook prints exactly what `automations lint` prints for those files
    lint = _run(
        [
            sys.executable,
            "-m",
            "automations",
            "lint",
            "recipes/broken.yaml",
            "recipes/lead.test.yaml",
        ],
        team,
        env,
    )
    assert lint.returncode == 1
    assert lint.stdout.startswith("recipes/broken.yaml:5:")
    assert '(did you mean "Email"?); columns come from the header of data/leads.csv' in lint.stdout
    assert "- hook id: automations-lint\n- exit code: 1\n\n" + lint.stdout in bad.stdout

    # the test file alone ran its recipe's tests
    assert (
        "FAIL recipes/lead.test.yaml:2 lead: the email is posted\n"
        "     requests[0].body.email: expected 'grace@example.com', got 'ada@example.com'\n"
    ) in bad.stdout
