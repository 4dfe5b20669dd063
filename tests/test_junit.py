"""The JUnit XML writer: well-formed whatever a test's name or a value holds, exact counts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from automations.diagnostics import Diagnostic, Severity
from automations.execution.preview import TestOutcome as Outcome
from automations.junit import CaseResult, SuiteResult, junit_xml


def test_an_empty_run_is_an_empty_report() -> None:
    text = junit_xml([])
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text)
    assert root.attrib == {
        "name": "automations test",
        "tests": "0",
        "failures": "0",
        "errors": "0",
        "time": "0.000",
    }


def test_every_character_a_yaml_string_can_hold_stays_well_formed() -> None:
    odd = "".join(chr(c) for c in range(32)) + "<&>\"' \ufffe\U0001f600"
    outcome = Outcome("r", f"name {odd}", 3, (f"body: expected {odd!r}, got ''",))
    suites = [
        SuiteResult("r.yaml", "r", (CaseResult(outcome, "r.test.yaml", 0.0125),)),
        SuiteResult(
            "b.yaml",
            "b.yaml",
            broken=(Diagnostic("b.yaml", 2, 4, Severity.ERROR, "SCH001", f"key {odd}"),),
        ),
    ]
    root = ET.fromstring(junit_xml(suites))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "1")
    case = next(root.iter("testcase"))
    kept = "\t\n\r<&>\"' "
    escaped = [f"\\x{c:02x}" for c in range(32) if chr(c) not in kept]
    assert case.get("name") == (
        "name "
        + "".join(escaped[:9])
        + "\t\n"
        + "".join(escaped[9:11])
        + "\r"
        + "".join(escaped[11:])
        + "<&>\"' \\xfffe\U0001f600"
    )
    assert case.get("time") == "0.013"
