"""JMESPath conditions and column expressions, compiled once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.parser import ParsedResult

__all__ = ["Condition", "compile_expression", "is_truthy"]

# JMESPath functions raise on type errors (e.g. length(null)); the rest of the engine treats
# a condition that cannot be evaluated as false, and records why.
_OPTIONS = jmespath.Options(dict_cls=dict)


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled JMESPath expression and its source text."""

    source: str
    parsed: ParsedResult

    def search(self, data: Any) -> Any:
        """The expression's value over ``data``; a JMESPath runtime error propagates."""
        return self.parsed.search(data, options=_OPTIONS)

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


