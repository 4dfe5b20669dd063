"""``automations test`` results as a JUnit XML report, the format CI systems display.

GitHub (through a test-report action), GitLab (``artifacts:reports:junit``), Jenkins (``junit``)
and Buildkite (Test Engine) all read the same shape::

    testsuites                       totals for the run
      testsuite   (one per recipe)   name = recipe name, file = recipe file
        testcase  (one per test)     classname = recipe name, file and line of the test
          failure                    message = first mismatch; text = every "expected ..., got ..."
        testcase "compiles"          only for a recipe (or its test file) with errors:
          error                      message = first error; text = every diagnostic
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from automations.diagnostics import Diagnostic
from automations.execution.preview import TestOutcome

__all__ = ["CaseResult", "SuiteResult", "junit_xml"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One recipe test as it ran: its outcome, where it is written, how long it took."""

    outcome: TestOutcome
    file: str
    seconds: float


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """One recipe file: its tests, or the errors that kept it from compiling."""

    file: str
    #: The recipe's name; the file's name when it did not compile.
    name: str
    cases: tuple[CaseResult, ...] = ()
    broken: tuple[Diagnostic, ...] = ()


# XML 1.0 cannot carry most control characters, even escaped; a test's row can.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _suite(s: SuiteResult) -> tuple[ET.Element, int, int, int, float]:
    suite = ET.Element("testsuite", name=_text(s.name), file=_text(s.file))
    failures = errors = 0
    total = 0.0
    for c in s.cases:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_text(s.name),
            name=_text(c.outcome.name),
            file=_text(c.file),
            line=str(c.outcome.line),
            time=_seconds(c.seconds),
        )
        total += c.seconds
        if c.outcome.problems:
            failures += 1
            problems = c.outcome.problems
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            failure = ET.SubElement(
                case, "failure", message=_text(problems[0] + more), type="RecipeTestFailure"
            )
            failure.text = _text("\n".join(problems))
    if s.broken:
        errors = 1
        first = s.broken[0]
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_text(s.name),
            name="compiles",
            file=_text(first.file),
            line=str(first.line),
            time=_seconds(0),
        )
        error = ET.SubElement(
            case, "error", message=_text(f"{first.message} [{first.code}]"), type=first.code
        )
        error.text = _text("\n".join(d.format() for d in s.broken))
    tests = len(s.cases) + errors
    suite.attrib.update(
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=_seconds(total),
    )
    return suite, tests, failures, errors, total


def junit_xml(suites: Sequence[SuiteResult]) -> str:
    """The JUnit XML document for ``suites``, with its XML declaration."""
    root = ET.Element("testsuites", name="automations test")
    tests = failures = errors = 0
    total = 0.0
    for s in suites:
        suite, t, f, e, secs = _suite(s)
        root.append(suite)
        tests, failures, errors, total = tests + t, failures + f, errors + e, total + secs
    root.attrib.update(
        tests=str(tests), failures=str(failures), errors=str(errors), time=_seconds(total)
    )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
