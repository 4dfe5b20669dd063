"""Diagnostics as text (with snippet and caret), JSON, GitHub annotations, SARIF 2.1.0 and the
GitLab Code Quality report."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from automations import __version__
from automations.diagnostics import Diagnostic, Severity
from automations.recipes.files import read_for_snippet
from automations.redact import MASK

__all__ = [
    "FORMATS",
    "RULES",
    "format_github",
    "format_gitlab",
    "format_json",
    "format_sarif",
    "format_text",
]

#: Every stable diagnostic code with a one-line description (SARIF rules, docs).
RULES: dict[str, str] = {
    "YAML001": "YAML syntax error",
    "YAML002": "duplicate key",
    "YAML003": "mapping key that is not a string",
    "YAML004": "phone number read as a number by YAML: quote it",
    "YAML005": "tab characters in indentation",
    "YAML006": "unquoted {/Column}: YAML reads a mapping",
    "SCH001": "unknown key",
    "SCH002": "missing required key",
    "SCH003": "wrong type",
    "SCH004": "invalid value",
    "SCH005": "zero or several of mutually exclusive keys (trigger kinds, action kinds)",
    "EXP001": "JMESPath syntax error",
    "EXP002": "double-quoted text in JMESPath is a column name",
    "EXP003": "a number compared with a CSV column (CSV values are text)",
    "REF001": "reference to a column that cannot exist",
    "REF002": "reference to a step that does not come before",
    "REF003": "malformed reference",
    "REF004": "URL host taken from row data",
    "REF005": "{{Column}} or a bare /Column inside text is sent as written",
    "VND001": "action body rejected by the vendor's request schema",
    "VND002": "value longer than the vendor accepts",
    "VND003": "Loops event property that is not text, a number or true/false",
    "VND004": "Quo contact source that Quo reserves",
    "IDP001": "action that is not idempotent runs again on updated rows",
    "VND006": "a Loops contact property written as null is cleared",
    "VND005": "SMS whose fixed text alone is over 1,600 characters",
    "ACT001": "duplicate step id",
    "TBL001": "table columns cannot be read",
    "TBL002": "table key column not in the table",
    "TBL003": "table file outside the recipes directory",
    "TBL004": "table file that may not be read",
    "DBT001": "database table that cannot be read (lint --connect)",
    "DBT002": "query that is not one SELECT",
    "DBT003": "write_back on a file table",
    "DBT004": "column missing from the database table (lint --connect)",
    "DBT005": "write_back on a query",
    "DBT006": "write_back that writes the key column",
    "SCD001": "invalid cron expression",
    "SCD002": "unknown time zone",
    "SCD003": "invalid interval",
    "DUP001": "duplicate recipe name",
    "DUP002": "two webhook recipes on one path",
    "ENV001": "environment variable not set",
    "ENV002": "provider API key not set",
    "ENV003": "$NAME without braces",
    "SEC001": "secret pasted into a recipe",
    "SEC002": "webhook without verification",
    "TST001": "test file without its recipe",
    "IO001": "file cannot be read",
    "IO002": "recipe or test file outside the recipes directory",
    "LIM001": "aliases expand too far",
    "LIM002": "nesting too deep",
    "LIM003": "recipe file too large",
    "LIM004": "number too long to read",
    "INT001": "internal error while loading the file",
}


def _source_line(d: Diagnostic, lines_cache: dict[str, list[str]]) -> str | None:
    """The text of the line ``d`` points at (``None`` when the file or line cannot be read)."""
    if d.file not in lines_cache:
        text = read_for_snippet(Path(d.file))
        lines_cache[d.file] = [] if text is None else text.splitlines()
    lines = lines_cache[d.file]
    return lines[d.line - 1] if 0 < d.line <= len(lines) else None


#: Findings whose caret points at a secret: their snippet shows it masked (lint's output lands in
#: CI logs, which more people read than the repository).
_SECRET_AT_CARET = frozenset({"SEC001"})


def _mask_at(src: str, column: int) -> str:
    """``src`` with the YAML scalar starting at ``column`` (1-based) replaced by ``***``."""
    start = column - 1
    if start >= len(src):
        return src
    if src[start] in "\"'":
        close = src.find(src[start], start + 1)
        end = len(src) if close < 0 else close + 1
    else:  # a plain scalar runs to a comment, or in a flow mapping or list to , } or ]
        stops = ",}]" if "{" in src[:start] or "[" in src[:start] else ""
        end = start
        while end < len(src) and src[end] not in stops and not src.startswith(" #", end):
            end += 1
        while end > start and src[end - 1] in " \t":
            end -= 1
    return src[:start] + MASK + src[end:]


#: Findings about a file that may not be read: no snippet, which would read it.
_NOT_READ = frozenset({"IO002"})


def _snippet(d: Diagnostic, lines_cache: dict[str, list[str]]) -> str:
    if d.code in _NOT_READ:
        return ""
    src = _source_line(d, lines_cache)
    if src is None:
        return ""
    if d.code in _SECRET_AT_CARET:
        src = _mask_at(src, d.column)
    gutter = f"{d.line:>4} | "
    return f"{gutter}{src}\n{' ' * (len(gutter) - 2)}| {' ' * (d.column - 1)}^\n"


def format_text(diags: Sequence[Diagnostic], *, snippets: bool = True) -> str:
    """``file:line:col: severity: message [CODE]`` lines, each with the source line and a caret,
    then a summary line."""
    cache: dict[str, list[str]] = {}
    out = []
    for d in diags:
        out.append(d.format() + "\n")
        if snippets:
            out.append(_snippet(d, cache))
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    out.append(f"{errors} error(s), {warnings} warning(s)\n" if diags else "")
    return "".join(out)


def format_json(diags: Sequence[Diagnostic]) -> str:
    return json.dumps([d.as_dict() for d in diags], indent=2) + "\n"


def _gh_escape(text: str, *, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def format_github(diags: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands: each finding becomes a pull-request annotation."""
    out = []
    for d in diags:
        level = "error" if d.is_error else "warning"
        props = ",".join(
            [
                f"file={_gh_escape(d.file, prop=True)}",
                f"line={d.line}",
                f"col={d.column}",
                f"title={_gh_escape(d.code + ' ' + RULES.get(d.code, ''), prop=True).strip()}",
            ]
        )
        out.append(f"::{level} {props}::{_gh_escape(d.message)}\n")
    return "".join(out)


def format_sarif(diags: Sequence[Diagnostic]) -> str:
    """A SARIF 2.1.0 log (GitHub code scanning and other viewers read it)."""
    codes = sorted(RULES)
    rules = [
        {
            "id": code,
            "name": code,
            "shortDescription": {"text": RULES[code]},
            "helpUri": "https://github.com/automations/automations/blob/main/docs/lint.md#"
            + code.lower(),
        }
        for code in codes
    ]
    results = [
        {
            "ruleId": d.code,
            "ruleIndex": codes.index(d.code) if d.code in RULES else -1,
            "level": "error" if d.severity is Severity.ERROR else "warning",
            "message": {"text": d.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": Path(d.file).as_posix()},
                        "region": {"startLine": d.line, "startColumn": d.column},
                    }
                }
            ],
        }
        for d in diags
    ]
    for r in results:
        if r["ruleIndex"] == -1:
            del r["ruleIndex"]
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "automations",
                        "version": __version__,
                        "informationUri": "https://github.com/automations/automations",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


#: GitLab's severities are info, minor, major, critical, blocker: an error (the recipe cannot run,
#: lint fails the job) is major, a warning minor.
_GITLAB_SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor"}


def format_gitlab(diags: Sequence[Diagnostic]) -> str:
    """A GitLab Code Quality report (``artifacts:reports:codequality``): a JSON list of issues.

    A fingerprint is how GitLab tells a new finding from one already on the target branch, so it
    hashes what the finding is about, never where it is: the path, the code and the offending
    line's text (whitespace-trimmed) with the column within it, plus an ordinal among identical
    findings. Moving unrelated lines, re-indenting, or a reworded message keeps it; editing the
    offending line changes it.
    """
    cache: dict[str, list[str]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    issues = []
    for d in diags:
        path = Path(d.file).as_posix().removeprefix("./")
        src = _source_line(d, cache)
        if src is None:
            context = d.message
        else:
            # where on the line, counted from its first non-blank: two findings on one line
            # differ, and re-indenting keeps both
            context = f"{d.column - 1 - (len(src) - len(src.lstrip()))}:{src.strip()}"
        key = (path, d.code, context)
        ordinal = seen[key] = seen.get(key, -1) + 1
        digest = hashlib.sha256("\0".join([*key, str(ordinal)]).encode("utf-8")).hexdigest()
        issues.append(
            {
                "type": "issue",
                "check_name": d.code,
                "description": f"{d.message} [{d.code}]",
                "categories": ["Bug Risk"],
                "fingerprint": digest[:32],
                "severity": _GITLAB_SEVERITY[d.severity],
                "location": {"path": path, "lines": {"begin": d.line}},
            }
        )
    return json.dumps(issues, indent=2) + "\n"


FORMATS: dict[str, Callable[[Sequence[Diagnostic]], str]] = {
    "text": format_text,
    "json": format_json,
    "github": format_github,
    "sarif": format_sarif,
    "gitlab": format_gitlab,
}
