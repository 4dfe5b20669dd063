"""What a table trigger reads, and where its file may be: the columns that count as a change;
paths outside the recipes directory, FIFOs, devices and odd links refused with a position."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from automations.model import TableTrigger
from automations.recipes.compiler import LoadResult, load_recipe_text
from automations.triggers.table_files import TableAccess
from tests.recipes.conftest import ENV, LEADS_CSV, codes
from tests.recipes.test_loader import GOOD


def _reads(result: LoadResult) -> frozenset[str] | None:
    assert result.recipe is not None, result.diagnostics
    assert isinstance(result.recipe.trigger, TableTrigger)
    return result.recipe.trigger.table.reads


def test_reads_are_the_key_references_and_conditions(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    assert _reads(compile_recipe(GOOD)) == {"Email", "Phone", "First Name"}


def test_reads_through_columns_are_what_the_expressions_read(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    text = GOOD.replace(
        "only_run_if:", "columns: {Mobile: Phone, Who: \"join(' ', [Company])\"}\nonly_run_if:"
    )
    text = text.replace("Phone != null && Phone != ''", "Mobile != null").replace(
        "to: [/Phone]", "to: [/Mobile]"
    )
    text = text.replace("{/First Name}", "{/Who}")
    assert _reads(compile_recipe(text)) == {"Email", "Phone", "Company"}


def test_a_condition_on_the_whole_row_reads_everything(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    text = GOOD.replace("Phone != null && Phone != ''", "length(keys(@)) > `2`")
    assert _reads(compile_recipe(text)) is None


def test_flood_limit_is_compiled(compile_recipe: Callable[..., LoadResult]) -> None:
    text = GOOD.replace("key: Email}", "key: Email, flood_limit: 0}")
    result = compile_recipe(text)
    assert result.recipe is not None
    assert isinstance(result.recipe.trigger, TableTrigger)
    assert result.recipe.trigger.table.flood_limit == 0


def _compile(recipes: Path, text: str, tables: TableAccess | None = None) -> LoadResult:
    return load_recipe_text(text, "r.yaml", base_dir=recipes, env=ENV, tables=tables)


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "private.csv").write_text(LEADS_CSV)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "leads.csv").write_text(LEADS_CSV)
    return tmp_path / "recipes"


@pytest.mark.parametrize("path", ["../outside/private.csv", "{abs}"])
def test_a_table_outside_the_recipes_directory_is_refused(recipes: Path, path: str) -> None:
    path = path.format(abs=recipes.parent / "outside" / "private.csv")
    result = _compile(recipes, GOOD.replace("path: leads.csv", f"path: {path}"))
    assert result.recipe is None
    assert codes(result.diagnostics) == [("TBL003", 4, 17)]
    message = result.diagnostics[0].message
    assert message.startswith(f"table path {path} is not allowed: private.csv resolves to ")
    assert message.endswith(
        "outside the recipes directory; keep tables inside it (or allow that folder: "
        "--allow-tables-outside DIR or $AUTOMATIONS_TABLES_OUTSIDE)"
    )


def test_a_link_pointing_out_is_refused_and_an_allowed_folder_is_read(recipes: Path) -> None:
    os.symlink(recipes.parent / "outside" / "private.csv", recipes / "link.csv")
    text = GOOD.replace("path: leads.csv", "path: link.csv")
    assert codes(_compile(recipes, text).diagnostics) == [("TBL003", 4, 17)]
    allowed = TableAccess.for_recipes(recipes, {}, [recipes.parent / "outside"])
    assert _compile(recipes, text, allowed).diagnostics == ()
    via_env = TableAccess.for_recipes(
        recipes, {"AUTOMATIONS_TABLES_OUTSIDE": str(recipes.parent / "outside")}
    )
    assert _compile(recipes, text, via_env).diagnostics == ()


def test_a_fifo_is_refused_without_blocking(recipes: Path) -> None:
    os.mkfifo(recipes / "pipe.csv")
    result = _compile(recipes, GOOD.replace("path: leads.csv", "path: pipe.csv"))
    assert codes(result.diagnostics) == [("TBL004", 4, 17)]
    assert result.diagnostics[0].message == (
        "cannot use table pipe.csv: pipe.csv is not a regular file (a FIFO); a table must be "
        "a plain .csv or .jsonl file"
    )


def test_a_link_to_dev_zero_is_refused(recipes: Path) -> None:
    os.symlink("/dev/zero", recipes / "zero.csv")
    result = _compile(recipes, GOOD.replace("path: leads.csv", "path: zero.csv"))
    assert result.recipe is None
    # /dev/zero is outside the recipes directory, and not a regular file either
    assert codes(result.diagnostics) == [("TBL003", 4, 17)]
    anywhere = TableAccess()
    result = _compile(recipes, GOOD.replace("path: leads.csv", "path: zero.csv"), anywhere)
    assert codes(result.diagnostics) == [("TBL004", 4, 17)]
    assert result.diagnostics[0].message.startswith("table path zero.csv links to zero, which is")


def test_a_link_to_a_file_without_a_table_suffix_is_refused(recipes: Path) -> None:
    (recipes / "export").write_text(LEADS_CSV)
    os.symlink(recipes / "export", recipes / "export.csv")
    result = _compile(recipes, GOOD.replace("path: leads.csv", "path: export.csv"))
    assert codes(result.diagnostics) == [("TBL004", 4, 17)]
    assert result.diagnostics[0].message.startswith(
        "table path export.csv links to export, which is not a .csv or .jsonl file"
    )


def test_a_table_over_the_size_limit_is_refused(recipes: Path) -> None:
    with open(recipes / "big.csv", "wb") as handle:
        handle.write(LEADS_CSV.encode())
        handle.truncate(3 * 1024 * 1024)  # sparse: no disk used
    small = TableAccess((recipes,), max_bytes=2 * 1024 * 1024)
    result = _compile(recipes, GOOD.replace("path: leads.csv", "path: big.csv"), small)
    assert codes(result.diagnostics) == [("TBL004", 4, 17)]
    assert result.diagnostics[0].message == (
        "cannot use table big.csv: big.csv is larger than the 2 MiB a table may be; split it, "
        "or raise $AUTOMATIONS_MAX_TABLE_MB"
    )
