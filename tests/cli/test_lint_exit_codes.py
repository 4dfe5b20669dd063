"""``automations lint``'s documented exit status (docs/ci.md): 0 clean (warnings allowed), 1
errors or more warnings than ``--max-warnings``, 2 usage or I/O; and ``--format gitlab``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from tests.test_formats import GITLAB_CODE_QUALITY_SCHEMA

pytestmark = pytest.mark.acceptance
Cli = Callable[..., subprocess.CompletedProcess[str]]

#: ENV002 (no QUO_API_KEY in the test's environment) is its one warning.
GOOD = """name: good
trigger:
  table: {path: leads.csv, key: Email}
actions:
  - quo.send_sms:
      from: "+15555550199"
      to: [/Phone]
      content: hi
"""
BAD = GOOD.replace("name: good", "name: bad").replace("[/Phone]", "[/Phnoe]")


@pytest.fixture(autouse=True)
def recipes(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("Email,Phone\n")
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "latin1.yaml").write_bytes(GOOD.replace("hi", "h\xe9").encode("latin-1"))


def test_0_when_only_warnings(cli: Cli) -> None:
    res = cli("lint", "good.yaml")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines()[0].endswith("[ENV002]")
    assert res.stdout.splitlines()[-1] == "0 error(s), 1 warning(s)"


def test_0_when_clean(cli: Cli) -> None:
    res = cli("lint", "good.yaml", "--max-warnings", "0", env={"QUO_API_KEY": "k"})
    assert (res.returncode, res.stdout) == (0, "1 recipe(s) checked, no problems\n")


def test_1_on_errors_in_every_format(cli: Cli) -> None:
    for fmt in ("text", "json", "github", "sarif", "gitlab"):
        res = cli("lint", "bad.yaml", "--format", fmt)
        assert (res.returncode, res.stderr) == (1, ""), fmt


def test_max_warnings(cli: Cli) -> None:
    assert cli("lint", "good.yaml", "--max-warnings", "1").returncode == 0
    res = cli("lint", "good.yaml", "--max-warnings", "0", "--format", "json")
    assert res.returncode == 1
    assert [d["code"] for d in json.loads(res.stdout)] == ["ENV002"]  # the report is complete
    assert res.stderr == "error: 1 warning(s), more than --max-warnings 0\n"
    # errors fail whatever the warnings
    assert cli("lint", "bad.yaml", "--max-warnings", "5").returncode == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.yaml"], "'nope.yaml' does not exist"),
        (["good.yaml", "--format", "xml"], "'xml' is not one of"),
        (["good.yaml", "--max-warnings", "-1"], "-1 is not in the range x>=0"),
        (["good.yaml", "--max-warnings", "many"], "'many' is not a valid integer"),
        (["good.yaml", "--no-such-option"], "No such option '--no-such-option'"),
        ([], "Missing argument 'PATHS...'"),
    ],
)
def test_2_on_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    res = cli("lint", *args)
    assert (res.returncode, res.stdout) == (2, "")
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_2_when_a_file_cannot_be_read_even_beside_errors(cli: Cli) -> None:
    res = cli("lint", "latin1.yaml", "bad.yaml", "--format", "json")
    assert res.returncode == 2
    found = sorted((d["file"], d["code"]) for d in json.loads(res.stdout))
    assert found == [("bad.yaml", "ENV002"), ("bad.yaml", "REF001"), ("latin1.yaml", "IO001")]
    assert res.stderr == "error: cannot read latin1.yaml, so the check is incomplete\n"


def test_gitlab_format_from_the_command_line(cli: Cli) -> None:
    res = cli("lint", ".", "--format", "gitlab", env={"QUO_API_KEY": "k"})
    assert res.returncode == 2  # latin1.yaml
    report = json.loads(res.stdout)
    jsonschema.Draft7Validator(GITLAB_CODE_QUALITY_SCHEMA).validate(report)
    assert [(i["location"]["path"], i["check_name"], i["severity"]) for i in report] == [
        ("bad.yaml", "REF001", "major"),
        ("latin1.yaml", "IO001", "major"),
    ]
    assert report[0]["location"]["lines"]["begin"] == 7
