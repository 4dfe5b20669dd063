"""Diagnostic output formats: text with snippet, JSON, GitHub annotations, SARIF 2.1.0."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from automations.diagnostics import Diagnostic, Severity
from automations.formats import RULES, format_github, format_json, format_sarif, format_text

VENDOR = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture
def diags(tmp_path: Path) -> list[Diagnostic]:
    f = tmp_path / "x.yaml"
    f.write_text("name: x\nactions:\n  - quo.send_sms: {to: [/Phnoe]}\n")
    return [
        Diagnostic(
            str(f),
            3,
            28,
            Severity.ERROR,
            "REF001",
            'unknown column "Phnoe" (did you mean "Phone"?)',
        ),
        Diagnostic(str(f), 1, 1, Severity.WARNING, "ENV001", "environment variable X, is: not set"),
    ]


def test_text_has_location_snippet_and_caret(diags: list[Diagnostic]) -> None:
    out = format_text(diags)
    lines = out.splitlines()
    assert lines[0].endswith(
        ':3:28: error: unknown column "Phnoe" (did you mean "Phone"?) [REF001]'
    )
    assert lines[1] == "   3 |   - quo.send_sms: {to: [/Phnoe]}"
    assert lines[2] == "     | " + " " * 27 + "^"
    assert lines[-1] == "1 error(s), 1 warning(s)"


def test_json(diags: list[Diagnostic]) -> None:
    data = json.loads(format_json(diags))
    assert data[0] == {
        "file": diags[0].file,
        "line": 3,
        "column": 28,
        "severity": "error",
        "code": "REF001",
        "message": 'unknown column "Phnoe" (did you mean "Phone"?)',
    }


def test_github_annotations_escape(diags: list[Diagnostic]) -> None:
    lines = format_github(diags).splitlines()
    assert lines[0].startswith(f"::error file={diags[0].file},line=3,col=28,title=REF001 ")
    assert lines[0].endswith('::unknown column "Phnoe" (did you mean "Phone"?)')
    assert lines[1].startswith("::warning ")
    assert "title=ENV001 environment variable not set::" in lines[1]


def test_sarif_validates_against_the_oasis_schema(diags: list[Diagnostic]) -> None:
    schema = json.loads((VENDOR / "sarif-schema-2.1.0.json").read_text())
    log = json.loads(format_sarif(diags))
    jsonschema.Draft7Validator(schema).validate(log)
    results = log["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["REF001", "ENV001"]
    assert results[0]["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 3,
        "startColumn": 28,
    }
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert rules[results[0]["ruleIndex"]]["id"] == "REF001"
    assert {r["id"] for r in rules} == set(RULES)
