"""``automations lint`` as CI runs it: exit codes and every output format."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from tests.cli.conftest import REPO

pytestmark = pytest.mark.acceptance
Cli = Callable[..., subprocess.CompletedProcess[str]]

BROKEN = """name: broken
trigger:
  table: {path: leads.csv, key: Email}
actions:
  - quo.send_sms:
      from: "+15555550199"
      to: [/Phnoe]
      content: hi
"""


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    (tmp_path / "leads.csv").write_text("Email,Phone\n")
    f = tmp_path / "x.yaml"
    f.write_text(BROKEN)
    return f


def test_examples_lint_clean(cli: Cli) -> None:
    res = cli("lint", str(REPO / "recipes"), "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert all(d["severity"] == "warning" for d in json.loads(res.stdout))


KEYS = {"QUO_API_KEY": "k", "LOOPS_API_KEY": "k"}


def test_text_format_points_at_the_column(cli: Cli, broken: Path) -> None:
    res = cli("lint", "x.yaml", env=KEYS)
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[0] == (
        'x.yaml:7:12: error: unknown column "Phnoe" (did you mean "Phone"?); '
        "columns come from the header of leads.csv [REF001]"
    )
    assert lines[1] == "   7 |       to: [/Phnoe]"
    assert lines[2] == "     |            ^"
    assert "Traceback" not in res.stderr


def test_json_github_and_sarif(cli: Cli, broken: Path) -> None:
    data = json.loads(cli("lint", "x.yaml", "--format", "json", env=KEYS).stdout)
    assert [(d["code"], d["line"], d["column"]) for d in data] == [("REF001", 7, 12)]
    gh = cli("lint", "x.yaml", "--format", "github", env=KEYS).stdout
    assert gh.startswith("::error file=x.yaml,line=7,col=12,title=REF001 ")
    sarif = json.loads(cli("lint", "x.yaml", "--format", "sarif", env=KEYS).stdout)
    schema = json.loads((REPO / "specs" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft7Validator(schema).validate(sarif)
    assert sarif["runs"][0]["results"][0]["ruleId"] == "REF001"


def test_missing_keys_are_warned_about_without_failing(cli: Cli, broken: Path) -> None:
    fixed = broken.read_text().replace("/Phnoe", "/Phone")
    broken.write_text(fixed)
    res = cli("lint", "x.yaml", "--format", "json")
    assert res.returncode == 0
    assert [d["code"] for d in json.loads(res.stdout)] == ["ENV002"]


def test_usage_error_exits_2(cli: Cli) -> None:
    res = cli("lint", "does-not-exist.yaml")
    assert res.returncode == 2
    assert "does not exist" in res.stderr


def test_yaml_garbage_is_a_diagnostic_not_a_traceback(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text("name: [\n  - : :\n")
    res = cli("lint", "g.yaml")
    assert res.returncode == 1
    assert res.stdout.startswith("g.yaml:")
    assert "[YAML001]" in res.stdout
    assert "Traceback" not in res.stderr
    # the same garbage indented with a tab: the diagnostic names the tab
    (tmp_path / "g.yaml").write_text("name: [\n\t- : :\n")
    res = cli("lint", "g.yaml")
    assert res.returncode == 1
    assert res.stdout.startswith("g.yaml:2:1: error: line 2 is indented with a tab character")
    assert "Traceback" not in res.stderr


def test_cross_file_checks(cli: Cli, tmp_path: Path) -> None:
    hook = (
        "name: {n}\ntrigger:\n  webhook: {{path: /h, verify: {{scheme: none}}}}\n"
        "actions:\n  - http.request: {{method: GET, url: 'https://x.example/'}}\n"
    )
    (tmp_path / "a.yaml").write_text(hook.format(n="same"))
    (tmp_path / "b.yaml").write_text(hook.format(n="same"))
    data = json.loads(cli("lint", ".", "--format", "json").stdout)
    codes = sorted(d["code"] for d in data if d["severity"] == "error")
    assert codes == ["DUP001", "DUP002"]


def test_ignore_warnings_for_a_run_as_ci_does(cli: Cli) -> None:
    res = cli("lint", str(REPO / "recipes"), "--format", "json")
    assert {d["code"] for d in json.loads(res.stdout)} == {"ENV001", "ENV002"}
    res = cli("lint", str(REPO / "recipes"), "--ignore", "ENV001,env002")
    assert (res.returncode, res.stdout) == (0, "11 recipe(s) checked, no problems\n")
    res = cli("lint", str(REPO / "recipes"), "--ignore", "ENV02")
    assert res.returncode == 2
    assert 'ENV02 is not a lint code (did you mean "ENV002"?)' in res.stderr


def test_ignore_never_hides_an_error(cli: Cli, broken: Path) -> None:
    res = cli("lint", "x.yaml", "--ignore", "REF001", env=KEYS)
    assert res.returncode == 1
    assert "[REF001]" in res.stdout
