"""docs/ci.md is true: its YAML parses, its versions are pinned to this release, and every
command its snippets run is run here, as each CI system would run the job, against a good and a
broken recipe directory. The ``pip install`` lines (they pin the release) are checked, not run;
``pre-commit`` runs in ``tests/acceptance/test_pre_commit.py``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from automations import __version__
from tests.cli.conftest import REPO
from tests.test_formats import GITLAB_CODE_QUALITY_SCHEMA

pytestmark = pytest.mark.acceptance

DOC = (REPO / "docs" / "ci.md").read_text("utf-8")
SNIPPETS = re.findall(r"^```(\w+)\n(.*?)^```$", DOC, re.M | re.S)
YAMLS = [yaml.safe_load(body) for lang, body in SNIPPETS if lang == "yaml"]
PRE_COMMIT, GITHUB, GITLAB = YAMLS
PIN = f"pip install automations=={__version__}"


@dataclass(frozen=True)
class Step:
    command: str
    #: GitHub's ``continue-on-error``: the job goes on when the command fails.
    may_fail: bool = False


def _jobs() -> dict[str, list[Step]]:
    jobs: dict[str, list[Step]] = {}
    for name, job in GITHUB["jobs"].items():
        jobs[f"github {name}"] = [
            Step(s["run"], bool(s.get("continue-on-error"))) for s in job["steps"] if "run" in s
        ]
    for name, job in GITLAB.items():
        jobs[f"gitlab {name}"] = [Step(line) for line in job["script"]]
    return jobs


JOBS = _jobs()


def test_ci_docs_are_linked_from_the_readme_and_the_cli_docs() -> None:
    assert "(docs/ci.md)" in (REPO / "README.md").read_text()
    assert "(ci.md)" in (REPO / "docs" / "cli.md").read_text()


def test_snippets_parse_and_pin_this_release() -> None:
    assert [lang for lang, _ in SNIPPETS] == ["yaml", "sh", "yaml", "yaml"]
    assert SNIPPETS[1][1] == "pip install pre-commit && pre-commit install\n"
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    [repo] = PRE_COMMIT["repos"]
    assert repo["rev"] == f"v{__version__}"  # a release tag
    assert [h["id"] for h in repo["hooks"]] == [h["id"] for h in hooks]
    uses = [s["uses"] for job in GITHUB["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", u) for u in uses), uses
    assert GITHUB["permissions"]["security-events"] == "write"
    assert set(GITLAB["recipes-lint"]["artifacts"]["reports"]) == {"codequality"}
    assert set(GITLAB["recipes-test"]["artifacts"]["reports"]) == {"junit"}
    # each job installs exactly this release before anything else
    for name, steps in JOBS.items():
        assert steps[0].command == PIN, name
        assert all("pip install" not in s.command for s in steps[1:]), name


GOOD = """name: lead-to-hook
trigger:
  table: {path: data/leads.csv, key: Email}
actions:
  - http.request: {method: POST, url: "https://hooks.example/lead", json: {email: /Email}}
"""
GOOD_TESTS = """tests:
  - name: the email is posted
    row: {Email: ada@example.com}
    expect: {requests: [{body: {email: ada@example.com}}]}
"""


def _recipes(root: Path, *, broken: bool) -> None:
    d = root / "recipes"
    (d / "data").mkdir(parents=True)
    (d / "data" / "leads.csv").write_text("Email\n")
    (d / "lead-to-hook.yaml").write_text(GOOD)
    (d / "lead-to-hook.test.yaml").write_text(GOOD_TESTS)
    if broken:
        (d / "broken.yaml").write_text(GOOD.replace("lead-to-hook", "broken").replace("/E", "/e"))


@dataclass
class Ran:
    step: Step
    returncode: int
    stdout: str


def _run_job(steps: list[Step], cwd: Path) -> list[Ran]:
    """Run ``steps`` as the CI system would: each in bash with errexit and pipefail, the job
    stopping at the first failure that is not allowed to fail."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUO_", "LOOPS_", "MATON_", "AUTOMATIONS_", "GITHUB_", "CI"))
    }
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    ran = []
    for step in steps[1:]:  # steps[0] is the pinned install, checked above
        res = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", step.command],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in res.stderr
        ran.append(Ran(step, res.returncode, res.stdout))
        if res.returncode and not step.may_fail:
            break
    return ran


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


SARIF_SCHEMA = json.loads((REPO / "specs" / "sarif-schema-2.1.0.json").read_text())


@pytest.mark.parametrize("job", list(JOBS))
def test_every_job_passes_on_good_recipes(job: str, tmp_path: Path) -> None:
    _recipes(tmp_path, broken=False)
    ran = _run_job(JOBS[job], tmp_path)
    assert [(r.step.command, r.returncode) for r in ran] == [(s.command, 0) for s in JOBS[job][1:]]
    for r in ran:
        assert "error" not in r.stdout.replace("0 error(s)", ""), r.stdout
    if (tmp_path / "automations.sarif").exists():
        jsonschema.Draft7Validator(SARIF_SCHEMA).validate(_json(tmp_path / "automations.sarif"))
    if (tmp_path / "gl-code-quality-report.json").exists():
        assert _json(tmp_path / "gl-code-quality-report.json") == []
    if (tmp_path / "junit.xml").exists():
        root = ET.parse(tmp_path / "junit.xml").getroot()
        assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")


def test_github_job_on_a_broken_recipe(tmp_path: Path) -> None:
    _recipes(tmp_path, broken=True)
    ran = _run_job(JOBS["github recipes"], tmp_path)
    # SARIF written though lint failed, and uploaded; the annotating lint fails the job
    assert [(r.step.command.split(" --")[0], r.returncode) for r in ran] == [
        ("automations lint recipes", 1),
        ("automations lint recipes", 1),
    ]
    sarif = _json(tmp_path / "automations.sarif")
    jsonschema.Draft7Validator(SARIF_SCHEMA).validate(sarif)
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["REF001"]
    assert ran[1].stdout.startswith("::error file=recipes/broken.yaml,line=5,col=")


def test_gitlab_jobs_on_a_broken_recipe(tmp_path: Path) -> None:
    _recipes(tmp_path, broken=True)
    lint = _run_job(JOBS["gitlab recipes-lint"], tmp_path)
    assert [r.returncode for r in lint] == [0, 1]  # the report kept, then the job fails
    report = _json(tmp_path / "gl-code-quality-report.json")
    jsonschema.Draft7Validator(GITLAB_CODE_QUALITY_SCHEMA).validate(report)
    assert [(i["location"]["path"], i["check_name"]) for i in report] == [
        ("recipes/broken.yaml", "REF001")
    ]
    assert lint[1].stdout.startswith("recipes/broken.yaml:5:")

    test = _run_job(JOBS["gitlab recipes-test"], tmp_path)
    assert [r.returncode for r in test] == [1]
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "0", "1")
