"""Checks for the mistakes people make most, each with a message that says how to fix it.

The schema and the vendors' request schemas catch these too, but in their own words
(``{'/SMS Message': None} is not of type 'string'``), or not at all (``{{Company}}`` is valid
text; ``Score > `50``` on a CSV column is a valid condition that never passes). Each check here
recognises one such mistake and shows the form that works (tabs in indentation, ``YAML005``,
are found where YAML fails, in ``yamlsource``):

- ``YAML006`` an unquoted ``{/Column}``, which YAML reads as a mapping;
- ``ENV003`` ``$NAME`` without braces, sent as the literal text ``$NAME``;
- ``EXP002`` ``"text"`` in JMESPath, which is a column name, not text;
- ``EXP003`` a number compared with a CSV column, whose values are all text;
- ``REF005`` ``{{Column}}`` or a bare ``/Column`` inside text, sent to the customer as written;
- ``VND005`` an SMS whose fixed text alone is over Quo's 1,600 characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from automations.conditions import Condition
from automations.diagnostics import Severity
from automations.recipes.context import CompileContext
from automations.recipes.yamlsource import Path_
from automations.templates import (
    ColumnRef,
    ListTemplate,
    Literal,
    MapTemplate,
    StepRef,
    Template,
    Text,
)

__all__ = [
    "SMS_MAX",
    "check_action_text",
    "check_brace_mappings",
    "quoted_column_advice",
    "text_comparisons",
]

#: Quo's limit on an SMS's ``content`` (the vendor schema's maxLength).
SMS_MAX = 1600
_DOLLAR_ENV = re.compile(r"(?<![$\\])\$([A-Z_][A-Z0-9_]*)(?![A-Za-z0-9_{])")
_SPACE_SLASH = re.compile(r"\s/\S")
_MUSTACHE = re.compile(r"\{\{\s*/?\s*([^{}]*?)\s*\}\}")
_NUMERIC_OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "eq": "==", "ne": "!="}


def check_brace_mappings(ctx: CompileContext) -> set[tuple[int, int]]:
    """``YAML006`` for each ``{/Column}`` written without quotes; returns their positions (the
    schema errors found at the same place say the same thing less clearly and are dropped)."""
    found: set[tuple[int, int]] = set()
    for path, key in ctx.doc.brace_refs:
        written = "{" + key + "}"
        name = path[-1] if path and isinstance(path[-1], str) else None
        fix = f'{name}: "{written}"' if name else f'"{written}"'
        ctx.report(
            path,
            "YAML006",
            f"{written} without quotes is a YAML mapping, not text; quote the value: {fix}",
        )
        found.add(ctx.doc.positions.of_value(path))
    return found


def quoted_column_advice(source: str, name: str, key: str) -> str | None:
    """For a condition field ``name`` that was written in double quotes and is not a column:
    the explanation and the fixed line, else ``None``."""
    quoted = json.dumps(name)
    if quoted not in source:
        return None
    fixed = source.replace(quoted, "'" + name.replace("'", "\\'") + "'")
    shown = json.dumps(fixed) if '"' not in fixed else fixed
    return (
        f"{quoted} in double quotes is a column name in JMESPath, and there is no column "
        f"{quoted}; text values take single quotes: {key}: {shown}"
    )


def text_comparisons(cond: Condition, columns: list[str]) -> Iterator[tuple[str, str, Any]]:
    """``(column, operator, number)`` for each comparison of one of ``columns`` (whose values
    are text) with a number literal: never true as written."""
    stack: list[Any] = [cond.parsed.parsed]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        children = node.get("children") or []
        if node.get("type") == "comparator" and len(children) == 2:
            for field_node, other in (children, children[::-1]):
                if (
                    field_node.get("type") == "field"
                    and field_node.get("value") in columns
                    and other.get("type") == "literal"
                    and isinstance(other.get("value"), int | float)
                    and not isinstance(other.get("value"), bool)
                ):
                    yield field_node["value"], _NUMERIC_OPS.get(node["value"], "?"), other["value"]
        if node.get("type") not in ("subexpression", "projection"):
            stack.extend(c for c in children if isinstance(c, dict))


def _literal_parts(t: Template) -> Iterator[str]:
    if isinstance(t, Literal) and isinstance(t.value, str):
        yield t.value
    elif isinstance(t, Text):
        yield from (p for p in t.parts if isinstance(p, str))


def _bare_column(text: str, columns: list[str]) -> str | None:
    """The longest known column written as ``/Column`` after a space (or at the start) of
    ``text``, or ``None``."""
    for m in re.finditer(r"(?:^|(?<=\s))/(?=\S)", text):
        rest = text[m.end() :]
        hits = [c for c in columns if rest.startswith(c) and not rest[len(c) :][:1].isalnum()]
        if hits:
            return max(hits, key=len)
    return None


def _leaves(t: Template, path: Path_, out: dict[Path_, Template]) -> None:
    if isinstance(t, MapTemplate):
        for k, v in t.items:
            _leaves(v, (*path, k), out)
    elif isinstance(t, ListTemplate):
        for i, v in enumerate(t.items):
            _leaves(v, (*path, i), out)
    else:
        out[path] = t


def check_action_text(
    ctx: CompileContext,
    path: Path_,
    kind: str,
    strings: list[tuple[Path_, str]],
    tpl: Template,
    columns: list[str] | None,
) -> None:
    """``ENV003``, ``REF005`` and ``VND005`` over an action's ``strings`` (as written, with
    their paths) and their parsed template ``tpl``."""
    templates: dict[Path_, Template] = {}
    sms_content = (*path, "content") if kind == "quo.send_sms" else None
    for spath, raw in strings:
        # cheap tests first: this runs over every string of every action
        for m in _DOLLAR_ENV.finditer(raw) if "$" in raw else ():
            name = m.group(1)
            whole = m.group(0) == raw
            ctx.report(
                spath,
                "ENV003",
                f"${name} without braces is sent as the text ${name}; environment variables "
                f"are written ${{{name}}}"
                + (
                    ""
                    if whole
                    else " (if this is meant as text, add # automations: ignore[ENV003] "
                    "to the line)"
                ),
                severity=Severity.ERROR if whole else Severity.WARNING,
                needle=m.group(0),
            )
        if not (
            "{{" in raw
            or (columns and _SPACE_SLASH.search(raw))
            or (spath == sms_content and len(raw) > SMS_MAX)
        ):
            continue
        if not templates:
            _leaves(tpl, path, templates)
        leaf = templates.get(spath)
        if leaf is None or isinstance(leaf, ColumnRef | StepRef):
            continue
        for part in _literal_parts(leaf):
            for m in _MUSTACHE.finditer(part):
                col = m.group(1)
                ctx.report(
                    spath,
                    "REF005",
                    f"{m.group(0)} is sent as written: columns inside text are written "
                    f"{{/{col}}} (one pair of braces and a slash)",
                    needle=m.group(0),
                )
            bare = _bare_column(part, columns) if columns else None
            if bare is not None:
                ctx.report(
                    spath,
                    "REF005",
                    f"/{bare} inside text is sent as written: a column inside text is written "
                    f"{{/{bare}}} (a whole value may be just /{bare})",
                    needle="/" + bare,
                )
        if spath == sms_content and isinstance(leaf, Text):
            fixed = sum(len(p) for p in _literal_parts(leaf))
            if fixed > SMS_MAX:
                ctx.report(
                    spath,
                    "VND005",
                    f"the fixed text of this SMS alone is {fixed:,} characters, over Quo's "
                    f"{SMS_MAX:,} limit, before any column is filled in: every send would be "
                    "refused; shorten the text",
                )
