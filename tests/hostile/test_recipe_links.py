"""A recipe file committed into the recipes folder as a link to a file elsewhere on the machine
met by ``lint`` (a subprocess) and by the runner: ``IO002`` at 1:1 of the link, the file never
read (no snippet, no recipe), and the other recipes keep running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.conftest import (
    _SCRUBBED,
    HOOK_SECRET,
    Fakes,
    dumps,
    standard_headers,
    webhook_recipe,
    write_recipe,
)
from tests.acceptance.runner_process import RunnerProcess, free_port, wait_until

pytestmark = pytest.mark.acceptance

#: The first line of the file outside: lint must never print it.
PRIVATE = "name: private  # PRIVATE-LINE-7f3a"


def _tree(tmp_path: Path) -> Path:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    write_recipe(recipes, "hook.yaml", webhook_recipe("hello"))
    outside = tmp_path / "outside"
    outside.mkdir()
    body = webhook_recipe("leaked", "/hooks/private", name="private").lstrip()
    (outside / "private.yaml").write_text(PRIVATE + "\n" + body.split("\n", 1)[1])
    os.symlink("../outside/private.yaml", recipes / "private.yaml")
    return recipes


def _lint(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automations", "lint", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOOK_SECRET": HOOK_SECRET, "LOOPS_API_KEY": "k"},
    )


def test_lint_refuses_the_link_with_its_position_and_no_snippet(tmp_path: Path) -> None:
    _tree(tmp_path)
    res = _lint(tmp_path, "recipes", "--format", "json")
    assert res.returncode == 1, res.stderr
    found = [(d["file"], d["line"], d["column"], d["code"]) for d in json.loads(res.stdout)]
    assert found == [("recipes/private.yaml", 1, 1, "IO002")]
    text = _lint(tmp_path, "recipes")
    assert text.returncode == 1
    assert "Traceback" not in text.stderr
    assert text.stdout.startswith(
        "recipes/private.yaml:1:1: error: recipe file private.yaml is not read: it resolves to "
    )
    assert "PRIVATE-LINE" not in text.stdout
    # the fix the message names: lint the directory that holds it
    assert _lint(tmp_path, "outside", "--format", "json").returncode == 0


def test_the_runner_starts_refuses_the_link_and_serves_the_others(
    tmp_path: Path, fakes: Fakes
) -> None:
    recipes = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env |= fakes.env() | {"HOOK_SECRET": HOOK_SECRET}
    logs = tmp_path / "logs"
    logs.mkdir()
    runner = RunnerProcess(recipes, tmp_path / "automations.db", free_port(), env, (), logs)
    runner.start()  # /healthz answers: the link did not stop the runner
    try:
        errors = runner.health()["errors"]
        found = {f: [(d["code"], d["line"], d["column"]) for d in ds] for f, ds in errors.items()}
        assert found == {"private.yaml": [("IO002", 1, 1)]}
        assert [r["name"] for r in runner.health()["recipes"]] == ["hook"]
        assert runner.summary() == {"status": "ok", "recipes": 1, "errors": 1}
        body = dumps({"email": "ada@example.com"})
        assert runner.post("/hooks/a", body, standard_headers(body, "msg_1")).status_code == 202
        private = dumps({"email": "eve@example.com"})
        assert runner.post("/hooks/private", private, standard_headers(private)).status_code == 404
        wait_until(lambda: len(fakes.loops_events()) == 1, "the good recipe's event")
        assert [e["body"]["eventName"] for e in fakes.loops_events()] == ["hello"]

        # a second link added while the runner watches: refused the same way, by hot reload
        os.symlink("../outside/private.yaml", recipes / "later.yaml")
        wait_until(lambda: "later.yaml" in runner.health()["errors"], "the new link refused")
        assert runner.summary() == {"status": "ok", "recipes": 1, "errors": 2}
        assert "Traceback" not in runner.log
    finally:
        code = runner.stop()
        runner.client.close()
    assert code == 0
    assert len(fakes.loops_events()) == 1
