"""Diagnostics: what lint, the loader and the runner report about a recipe."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Diagnostic", "Severity"]


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
