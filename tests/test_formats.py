"""Diagnostic output formats: text with snippet, JSON, GitHub annotations, SARIF 2.1.0, GitLab
Code Quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest

from automations.diagnostics import Diagnostic, Severity
from automations.formats import (
    RULES,
    format_github,
    format_gitlab,
    format_json,
    format_sarif,
    format_text,
)
from automations.recipes.compiler import load_recipe

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


def test_a_pasted_secret_is_masked_in_the_snippet(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "name: s\n"
        "trigger:\n"
        '  webhook: {path: /h, verify: {scheme: token, header: X-Token, secret: "sk_live_abc123'
        'def456ghi789"}}\n'
        "actions:\n"
        "  - http.request:\n"
        "      method: POST\n"
        '      url: "https://hooks.example/x"\n'
        "      headers: {Authorization: Bearer sk_live_abc123def456ghi789, X-A: b}\n"
    )
    found = [d for d in load_recipe(f, {}).diagnostics if d.code == "SEC001"]
    assert [(d.line, d.column) for d in found] == [(3, 72), (8, 32)]
    out = format_text(found)
    assert "abc123" not in out
    lines = out.splitlines()
    assert lines[1] == (
        "   3 |   webhook: {path: /h, verify: {scheme: token, header: X-Token, secret: ***}}"
    )
    assert lines[4] == "   8 |       headers: {Authorization: ***, X-A: b}"


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


#: The GitLab Code Quality report, as GitLab documents it ("Code Quality report format": a JSON
#: array of issues; every field below is required, the Code Climate ones GitLab ignores are
#: allowed). ``location.lines.begin`` is the form we write (GitLab also takes
#: ``location.positions.begin.line``); ``path`` is relative to the repository, without "./".
GITLAB_CODE_QUALITY_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "array",
    "items": {
        "type": "object",
        "required": ["description", "check_name", "fingerprint", "severity", "location"],
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "check_name": {"type": "string", "minLength": 1},
            "fingerprint": {"type": "string", "minLength": 1},
            "severity": {"enum": ["info", "minor", "major", "critical", "blocker"]},
            "location": {
                "type": "object",
                "required": ["path", "lines"],
                "properties": {
                    "path": {"type": "string", "pattern": "^(?!\\./)(?!/)."},
                    "lines": {
                        "type": "object",
                        "required": ["begin"],
                        "properties": {"begin": {"type": "integer", "minimum": 1}},
                    },
                },
            },
        },
    },
}


def _gitlab(diags: list[Diagnostic]) -> list[dict[str, Any]]:
    report = json.loads(format_gitlab(diags))
    jsonschema.Draft7Validator(GITLAB_CODE_QUALITY_SCHEMA).validate(report)
    return cast(list[dict[str, Any]], report)


def test_gitlab_code_quality_validates_against_the_documented_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text("name: x\nactions:\n  - quo.send_sms: {to: [/Phnoe]}\n")
    report = _gitlab(
        [
            Diagnostic("./x.yaml", 3, 28, Severity.ERROR, "REF001", 'unknown column "Phnoe"'),
            Diagnostic("x.yaml", 1, 1, Severity.WARNING, "ENV001", "X is not set"),
        ]
    )
    assert report[0] == {
        "type": "issue",
        "check_name": "REF001",
        "description": 'unknown column "Phnoe" [REF001]',
        "categories": ["Bug Risk"],
        "fingerprint": report[0]["fingerprint"],
        "severity": "major",
        "location": {"path": "x.yaml", "lines": {"begin": 3}},
    }
    assert (report[1]["severity"], report[1]["location"]["lines"]["begin"]) == ("minor", 1)
    assert len(report[0]["fingerprint"]) == 32
    assert report[0]["fingerprint"] != report[1]["fingerprint"]
    assert _gitlab([]) == []


RECIPE = """name: x
trigger:
  table: {path: leads.csv, key: Email}
actions:
  - quo.send_sms:
      from: "+15555550199"
      to: [/Phone]
      content: "{/Nmae}, {/Nmae}"
  - quo.send_sms:
      from: "+15555550199"
      to: [/Phone]
      content: "{/Nmae}, {/Nmae}"
"""


def _lint_gitlab(tmp_path: Path, text: str) -> list[dict[str, Any]]:
    (tmp_path / "leads.csv").write_text("Email,Phone\n")
    (tmp_path / "x.yaml").write_text(text)
    return _gitlab(list(load_recipe(Path("x.yaml"), {}).diagnostics))


def test_gitlab_fingerprints_ignore_moved_lines_and_tell_findings_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _lint_gitlab(tmp_path, RECIPE)
    assert [(d["check_name"], d["location"]["lines"]["begin"]) for d in before] == [
        ("ENV002", 5),
        ("REF001", 8),
        ("REF001", 8),
        ("REF001", 12),
        ("REF001", 12),
    ]
    # two findings on one line, and the same line twice in a file: five fingerprints
    assert len({d["fingerprint"] for d in before}) == 5

    # unrelated lines move: a comment and a description above the findings
    moved = "# owner: ops\n" + RECIPE.replace("name: x\n", "name: x\ndescription: texts\n")
    after = _lint_gitlab(tmp_path, moved)
    assert [d["location"]["lines"]["begin"] for d in after] == [7, 10, 10, 14, 14]
    assert [d["fingerprint"] for d in after] == [d["fingerprint"] for d in before]

    # editing the offending line makes its findings new ones; the other three stay known (two
    # identical findings are interchangeable: which one keeps which fingerprint does not matter)
    edited = _lint_gitlab(tmp_path, RECIPE.replace("{/Nmae}, {/Nmae}", "{/Nmae}, {/Fone}", 1))
    known = {d["fingerprint"] for d in before}
    assert [d["location"]["lines"]["begin"] for d in edited if d["fingerprint"] not in known] == [
        8,
        8,
    ]
    assert len({d["fingerprint"] for d in edited}) == 5
