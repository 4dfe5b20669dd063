"""``automations test --junit-xml FILE``: the report CI systems display, parsed back."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.acceptance
Cli = Callable[..., subprocess.CompletedProcess[str]]

RECIPE = """name: {name}
trigger:
  table: {{path: leads.csv, key: Email}}
actions:
  - http.request: {{method: POST, url: "https://x.example/", json: {{e: /Email}}}}
"""
INLINE_TESTS = """tests:
  - name: posts the email
    row: {Email: a@example.com}
    expect: {requests: [{body: {e: a@example.com}}]}
  - name: wrong on purpose
    row: {Email: a@example.com}
    expect: {requests: [{method: GET, body: {e: b@example.com}}]}
"""
SIDECAR_TESTS = """tests:
  - name: "control \\x01 characters <&> survive"
    row: {Email: c@example.com}
    expect: {requests: [{body: {e: c@example.com}}]}
"""


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    d = tmp_path / "recipes"
    d.mkdir()
    (d / "leads.csv").write_text("Email\n")
    (d / "a.yaml").write_text(RECIPE.format(name="a") + INLINE_TESTS)
    (d / "b.yaml").write_text(RECIPE.format(name="b"))
    (d / "b.test.yaml").write_text(SIDECAR_TESTS)
    (d / "broken.yaml").write_text(RECIPE.format(name="broken").replace("/Email", "/Emial"))
    return d


def test_junit_report_counts_failures_and_errors(cli: Cli, recipes: Path, tmp_path: Path) -> None:
    res = cli("test", "recipes", "--junit-xml", "junit.xml")
    assert res.returncode == 1
    assert res.stdout.splitlines()[-1] == "2 passed, 1 failed"
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors")} == {
        "tests": "4",
        "failures": "1",
        "errors": "1",
    }
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["a", "b", "recipes/broken.yaml"]
    assert [(s.get("tests"), s.get("failures"), s.get("errors")) for s in suites.values()] == [
        ("2", "1", "0"),
        ("1", "0", "0"),
        ("1", "0", "1"),
    ]

    passed, failed = suites["a"].iter("testcase")
    assert passed.attrib | {"time": "-"} == {
        "classname": "a",
        "name": "posts the email",
        "file": "recipes/a.yaml",
        "line": "7",
        "time": "-",
    }
    assert list(passed) == []
    [failure] = failed
    assert failure.tag == "failure"
    assert failure.get("message") == ("requests[0].method: expected 'GET', got 'POST' (and 1 more)")
    assert failure.text == (
        "requests[0].method: expected 'GET', got 'POST'\n"
        "requests[0].body.e: expected 'b@example.com', got 'a@example.com'"
    )

    [sidecar] = suites["b"].iter("testcase")
    assert (sidecar.get("name"), sidecar.get("file"), sidecar.get("line")) == (
        "control \\x01 characters <&> survive",
        "recipes/b.test.yaml",
        "2",
    )

    [compiles] = suites["recipes/broken.yaml"].iter("testcase")
    [error] = compiles
    assert (compiles.get("name"), compiles.get("line"), error.tag, error.get("type")) == (
        "compiles",
        "5",
        "error",
        "REF001",
    )
    assert error.get("message", "").startswith('unknown column "Emial" (did you mean "Email"?)')
    assert error.text is not None and error.text.startswith("recipes/broken.yaml:5:")


def test_junit_report_of_a_passing_run(cli: Cli, recipes: Path, tmp_path: Path) -> None:
    res = cli("test", "recipes/b.test.yaml", "--junit-xml", "junit.xml")
    assert (res.returncode, res.stdout.splitlines()[-1]) == (0, "1 passed, 0 failed")
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")


def test_an_unwritable_report_is_exit_2(cli: Cli, recipes: Path) -> None:
    res = cli("test", "recipes/b.yaml", "--junit-xml", "no/such/dir/junit.xml")
    assert res.returncode == 2
    assert res.stderr == (
        "error: cannot write the JUnit report no/such/dir/junit.xml: No such file or directory\n"
    )
    assert "Traceback" not in res.stderr
