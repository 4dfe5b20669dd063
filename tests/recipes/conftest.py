from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from automations.diagnostics import Diagnostic
from automations.recipes.compiler import LoadResult, load_recipe_text

ENV = {
    "QUO_FROM": "+15555550199",
    "HOOK_SECRET": "whsec_x",
    "QUO_API_KEY": "k",
    "LOOPS_API_KEY": "k",
}
LEADS_CSV = "Email,First Name,Last Name,Company,Phone\na@example.com,Ada,L,X,(555) 555-0100\n"


@pytest.fixture
def compile_recipe(tmp_path: Path) -> Callable[..., LoadResult]:
    """Compile recipe text (dedented) with a leads.csv beside it and a fixed environment."""
    (tmp_path / "leads.csv").write_text(LEADS_CSV)

    def run(text: str, env: dict[str, str] | None = None, csv: str | None = None) -> LoadResult:
        if csv is not None:
            (tmp_path / "leads.csv").write_text(csv)
        return load_recipe_text(
            textwrap.dedent(text).lstrip("\n"),
            "r.yaml",
            base_dir=tmp_path,
            env=ENV if env is None else env,
        )

    return run


def codes(diags: tuple[Diagnostic, ...]) -> list[tuple[str, int, int]]:
    return [(d.code, d.line, d.column) for d in diags]
