"""Diagnostics: what lint, the loader and the runner report about a recipe."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Diagnostic", "Severity", "drop_ignored", "inline_ignores"]

_IGNORE = re.compile(r"#\s*automations:\s*ignore\[([A-Za-z0-9_,\s]+)\]")


class Severity(enum.Enum):
    """How bad a finding is."""

    #: The recipe cannot run as written; ``lint`` exits 1 and the runner does not start it.
    ERROR = "error"
    #: The recipe runs, but probably not as intended (an unset variable, an unverified webhook).
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding at a 1-based ``line`` and ``column`` of ``file``, with a stable ``code``."""

    file: str
    line: int
    column: int
    severity: Severity
    code: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def format(self) -> str:
        """``file:line:col: severity: message [CODE]``, the form editors and CI parse."""
        return (
            f"{self.file}:{self.line}:{self.column}: {self.severity.value}: "
            f"{self.message} [{self.code}]"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
        }


def inline_ignores(text: str) -> dict[int, frozenset[str]]:
    """The codes each line ignores: ``# automations: ignore[ENV002]`` (several codes separated
    by commas) at the end of a line ignores them on that line; on a line of its own, on the
    next line."""
    out: dict[int, frozenset[str]] = {}
    if "automations:" not in text:
        return out
    for number, line in enumerate(text.splitlines(), 1):
        m = _IGNORE.search(line)
        if m is None:
            continue
        codes = frozenset(c.strip().upper() for c in m.group(1).split(",") if c.strip())
        target = number + 1 if line.lstrip().startswith("#") else number
        out[target] = out.get(target, frozenset()) | codes
    return out


def drop_ignored(
    diags: Iterable[Diagnostic],
    codes: Iterable[str] = (),
    lines: dict[int, frozenset[str]] | None = None,
) -> list[Diagnostic]:
    """``diags`` without the warnings whose code is in ``codes`` or ignored on their line.
    Errors are never dropped: a recipe with one does not run, whatever the comments say."""
    everywhere = frozenset(codes)
    lines = lines or {}
    return [
        d
        for d in diags
        if d.is_error or (d.code not in everywhere and d.code not in lines.get(d.line, ()))
    ]
