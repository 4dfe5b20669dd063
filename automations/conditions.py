"""JMESPath conditions and column expressions, compiled once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter

__all__ = [
    "EVALUATION_ERRORS",
    "STEP_FIELD",
    "Condition",
    "compile_expression",
    "is_truthy",
    "quote_step_refs",
]

#: What evaluating an expression over arbitrary data can raise.
EVALUATION_ERRORS: tuple[type[Exception], ...] = (JMESPathError, TypeError, ValueError)

# JMESPath functions raise on type errors (e.g. length(null)); the rest of the engine treats
# a condition that cannot be evaluated as false, and records why.
_OPTIONS = jmespath.Options(dict_cls=dict)
# ``ParsedResult.search`` builds a new interpreter per call; it keeps no per-call state, so one
# shared interpreter saves a quarter of a condition's cost on the hot path.
_INTERPRETER = TreeInterpreter(_OPTIONS)


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled JMESPath expression and its source text."""

    source: str
    parsed: ParsedResult

    def search(self, data: Any) -> Any:
        """The expression's value over ``data``. A runtime error (JMESPath's type errors, or
        Python's ``TypeError`` for a comparison such as ``"12" > `10` ``) propagates; callers
        catch ``EVALUATION_ERRORS``."""
        return _INTERPRETER.visit(self.parsed.parsed, data)

    def test(self, data: Any) -> bool:
        """Truthiness in JMESPath's sense: false, null, "", [] and {} are false; 0 is true."""
        return is_truthy(self.search(data))


def compile_expression(source: str) -> Condition:
    """Compile ``source``; raises ``jmespath.exceptions.JMESPathError`` (the loader turns it into
    a diagnostic with a position)."""
    return Condition(source, jmespath.compile(source))


def is_truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


#: A step's response, in an action's ``only_run_if``, is the row field ``"@<step id>"``.
STEP_FIELD = "@"
_STEP_NAME = re.compile(r"@([A-Za-z_][A-Za-z0-9_-]*)")
_QUOTES = {"'": "'", '"': '"', "`": "`"}


def quote_step_refs(source: str) -> str:
    """``source`` with each bare ``@step`` (outside quotes and literals) written as the quoted
    field ``"@step"``, which is how a step's response is found in the data an action's
    ``only_run_if`` sees: ``length(@find.data) == `0` `` reads the ``find`` step's response.

    A bare ``@`` (JMESPath's current node) is left alone."""
    if "@" not in source:
        return source
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch in _QUOTES:  # copy a quoted identifier or literal as it is
            j = i + 1
            while j < n and source[j] != ch:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i : j + 1])
            i = j + 1
            continue
        m = _STEP_NAME.match(source, i) if ch == "@" else None
        if m is not None:
            out.append(f'"@{m.group(1)}"')
            i = m.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)
