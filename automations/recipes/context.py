"""The state of compiling one recipe file: its source, positions and findings so far."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from automations.diagnostics import Diagnostic, Severity
from automations.recipes.yamlsource import Path_, SourceDoc
from automations.triggers.table_files import TableAccess

__all__ = ["CompileContext"]


@dataclass
class CompileContext:
    doc: SourceDoc
    base_dir: Path
    env: Mapping[str, str]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: Where table files may be (the recipes directory) and how large.
    tables: TableAccess = field(default_factory=TableAccess)
    #: ``lint --connect``: database tables are opened to check the table and its columns.
    connect: bool = False

    def report(
        self,
        path: Path_,
        code: str,
        message: str,
        *,
        severity: Severity = Severity.ERROR,
        at_key: bool = False,
        needle: str | None = None,
        offset: int | None = None,
    ) -> None:
        """Record a finding at the value (or key) at ``path``.

        ``needle`` moves the column to where that text appears on the value's line (a reference
        inside a longer string); ``offset`` to a character offset inside a one-line scalar (a
        JMESPath error position).
        """
        pos = self.doc.positions
        line, col = pos.of_key(path) if at_key else pos.of_value(path)
        src = self.line_text(line)
        if needle is not None and src is not None:
            found = src.find(needle, col - 1)
            if found >= 0:
                col = found + 1
        elif offset is not None and src is not None and col - 1 < len(src):
            quoted = src[col - 1] in "\"'"
            col += offset + (1 if quoted else 0)
        self.diagnostics.append(Diagnostic(self.doc.file, line, col, severity, code, message))

    def line_text(self, line: int) -> str | None:
        """The source text of 1-based ``line``, if the file has it."""
        lines = self.doc.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else None

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)
