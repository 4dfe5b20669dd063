"""Lint of database table triggers and ``write_back``: what is checked without a database (exact
code, line and column), what ``--connect`` adds against a real SQLite file and PostgreSQL, and
how the recipe compiles (reads without the written columns, the URL's variables as secrets)."""

from __future__ import annotations

import re
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from automations.model import DbTableSpec, TableTrigger
from automations.recipes.compiler import LoadResult, load_recipe_text
from tests.recipes.conftest import ENV, codes
from tests.triggers.databases import open_database

DB_RECIPE = """\
name: db-leads
trigger:
  table:
    database: crm.db
    table: leads
    key: id
    run_on: [added, updated]
    changed_by: updated_at
actions:
  - id: sms
    quo.send_sms: {from: "${QUO_FROM}", to: [/phone], content: "Hi {/name}"}
write_back:
  sms_id: /@sms.data.id
  sms_status: "{/@sms.data.status}"
  automation_error: /@error
"""

COLUMNS = "id, phone, name, updated_at, sms_id, sms_status, automation_error"


def _compile(
    folder: Path, text: str, *, connect: bool = False, env: dict[str, str] | None = None
) -> LoadResult:
    return load_recipe_text(
        textwrap.dedent(text), "r.yaml", base_dir=folder, env=env or ENV, connect=connect
    )


def _table(folder: Path, columns: str = COLUMNS) -> None:
    db = sqlite3.connect(folder / "crm.db")
    db.execute(f"CREATE TABLE leads ({columns})")
    db.commit()
    db.close()


def test_a_database_table_compiles(tmp_path: Path) -> None:
    result = _compile(tmp_path, DB_RECIPE)
    assert [d.code for d in result.diagnostics] == ["IDP001"]  # an SMS on updated rows
    assert result.recipe is not None
    trigger = result.recipe.trigger
    assert isinstance(trigger, TableTrigger) and isinstance(trigger.table, DbTableSpec)
    spec = trigger.table
    assert spec.database == str(tmp_path.resolve() / "crm.db")
    assert (spec.table, spec.key, spec.changed_by, spec.poll_s) == ("leads", "id", "updated_at", 5)
    assert spec.reads == {"id", "phone", "name"}
    assert spec.written == {"sms_id", "sms_status", "automation_error"}
    assert [name for name, _ in result.recipe.write_back] == [
        "sms_id",
        "sms_status",
        "automation_error",
    ]


def test_written_columns_are_not_reads_even_when_referenced(tmp_path: Path) -> None:
    text = DB_RECIPE.replace('content: "Hi {/name}"', 'content: "Hi {/name} {/sms_status}"')
    result = _compile(tmp_path, text)
    assert result.recipe is not None
    assert isinstance(result.recipe.trigger, TableTrigger)
    assert result.recipe.trigger.table.reads == {"id", "phone", "name"}


def test_the_url_variables_are_secrets(tmp_path: Path) -> None:
    text = DB_RECIPE.replace("database: crm.db", 'database: "postgresql://crm:${CRM_PW}@db/crm"')
    result = _compile(tmp_path, text, env={**ENV, "CRM_PW": "hunter22"})
    assert result.recipe is not None
    assert "CRM_PW" in result.recipe.env_names
    unset = _compile(tmp_path, text)
    assert ("ENV001", 4, 33) in codes(unset.diagnostics)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # a password pasted into the URL
        ("database: crm.db", "database: postgresql://crm:hunter2@db/crm", ("SEC001", 4, 15)),
        # a SQLite file outside the recipes directory
        ("database: crm.db", "database: ../elsewhere/crm.db", ("TBL003", 4, 15)),
        # a query that is not one SELECT
        ("table: leads", "query: delete from leads", ("DBT002", 5, 12)),
        ("table: leads", "query: 'select 1; drop table leads'", ("DBT002", 5, 12)),
        # write_back on a query
        ("table: leads", "query: select * from leads", ("DBT005", 12, 1)),
        # write_back writing the key
        ("automation_error: /@error", "id: /@error", ("DBT006", 15, 3)),
        # a step that does not exist
        ("sms_id: /@sms.data.id", "sms_id: /@smss.data.id", ("REF002", 13, 11)),
        # poll that is not an interval
        ("changed_by: updated_at", "changed_by: updated_at\n    poll: soon", ("SCD003", 9, 11)),
    ],
)
def test_what_lint_finds_without_a_database(
    tmp_path: Path, old: str, new: str, expected: tuple[str, int, int]
) -> None:
    result = _compile(tmp_path, DB_RECIPE.replace(old, new))
    assert expected in codes(result.diagnostics)
    assert result.recipe is None


def test_columns_given_are_checked_without_a_database(tmp_path: Path) -> None:
    text = DB_RECIPE.replace(
        "changed_by: updated_at",
        "changed_by: updated\n    columns: [id, phone, name, updated_at]",
    ).replace("key: id", "key: ident")
    found = codes(_compile(tmp_path, text).diagnostics)
    assert ("TBL002", 6, 10) in found  # the key
    assert ("DBT004", 8, 17) in found  # changed_by


def test_write_back_on_a_file_table_is_an_error(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    result = compile_recipe(
        """
        name: file-leads
        trigger:
          table: {path: leads.csv, key: Email}
        actions:
          - loops.send_event: {email: /Email, eventName: x}
        write_back:
          status: done
        """
    )
    (diag,) = [d for d in result.diagnostics if d.code == "DBT003"]
    assert (diag.line, diag.column) == (6, 1)
    assert diag.message.startswith("write_back writes into a database table's row; a file table")


def test_path_and_database_together_are_refused(tmp_path: Path) -> None:
    text = DB_RECIPE.replace("database: crm.db", "database: crm.db\n    path: leads.csv")
    assert ("SCH005", 3, 3) in codes(_compile(tmp_path, text).diagnostics)


def test_connect_checks_the_table_and_its_columns(tmp_path: Path) -> None:
    _table(tmp_path, "id, phone, nom, updated_at, sms_id, automation_error")
    result = _compile(tmp_path, DB_RECIPE, connect=True)
    found = {(d.code, d.line, d.column): d.message for d in result.diagnostics}
    assert found[("REF001", 11, 69)] == (
        f'unknown column "name"; columns come from table leads in {tmp_path.resolve()}/crm.db'
    )
    assert found[("DBT004", 14, 3)] == (
        'write_back column "sms_status" is not in leads; add it to the table first'
    )
    assert result.recipe is None


def test_connect_reports_a_missing_table_and_database(tmp_path: Path) -> None:
    _table(tmp_path)
    missing = _compile(tmp_path, DB_RECIPE.replace("table: leads", "table: leeds"), connect=True)
    (diag,) = [d for d in missing.diagnostics if d.code == "DBT001"]
    assert (diag.line, diag.column) == (5, 12)
    assert "no such table: leeds" in diag.message
    gone = _compile(tmp_path, DB_RECIPE.replace("crm.db", "none.db"), connect=True)
    (diag,) = [d for d in gone.diagnostics if d.code == "DBT001"]
    assert (diag.line, diag.column) == (4, 15)
    assert "does not exist" in diag.message
    ok = _compile(tmp_path, DB_RECIPE, connect=True)
    assert [d.code for d in ok.diagnostics] == ["IDP001"]


def test_connect_to_postgresql_names_no_password(tmp_path: Path) -> None:
    with open_database("postgres", tmp_path) as db:
        db.sql(f"CREATE TABLE leads ({COLUMNS.replace(',', ' text,')} text)")
        text = DB_RECIPE.replace("database: crm.db", "database: ${CRM_DB}")
        env = {**ENV, "CRM_DB": db.url}
        ok = _compile(tmp_path, text, env=env, connect=True)
        assert [d.code for d in ok.diagnostics] == ["IDP001"]
        bad = _compile(
            tmp_path, text.replace("table: leads", "table: leeds"), env=env, connect=True
        )
        (diag,) = [d for d in bad.diagnostics if d.code == "DBT001"]
        assert 'relation "leeds" does not exist' in diag.message
        assert "database ${CRM_DB}" in diag.message
        assert db.url not in diag.message


def test_the_docs_example_compiles_without_a_finding(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "recipes.md").read_text("utf-8")
    [block] = re.findall(r"```yaml\n(# crm-leads\.yaml.*?)```", doc, re.S)
    env = {**ENV, "CRM_DATABASE_URL": "postgresql://crm@db/crm"}
    result = load_recipe_text(block, "crm-leads.yaml", base_dir=tmp_path, env=env)
    assert result.diagnostics == ()
    assert result.recipe is not None
    assert result.recipe.env_names == {"CRM_DATABASE_URL", "QUO_FROM"}
