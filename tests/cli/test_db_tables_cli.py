"""The CLI with a database table recipe: ``exec --key`` reads the row from the table,
``lint --connect`` checks the table, ``db notify-sql`` prints the trigger."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.cli.conftest import REPO

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _example(tmp_path: Path) -> Path:
    folder = tmp_path / "recipes"
    (folder / "data").mkdir(parents=True)
    shutil.copy(REPO / "recipes" / "crm-leads-to-loops.yaml", folder)
    shutil.copy(REPO / "recipes" / "data" / "crm.db", folder / "data")
    return folder / "crm-leads-to-loops.yaml"


def test_exec_key_reads_the_row_from_the_table(cli: Cli, tmp_path: Path) -> None:
    recipe = _example(tmp_path)
    res = cli("exec", str(recipe), "--key", "2", "--dry-run", "--db", "runs.db")
    assert res.returncode == 0, res.stderr
    (run,) = json.loads(cli("runs", "--db", "runs.db", "--format", "json").stdout)
    assert run["status"] == "succeeded" and run["dry_run"] is True
    shown = json.loads(cli("show", run["id"], "--db", "runs.db", "--format", "json").stdout)
    assert shown["event"]["email"] == "grace@example.com"
    assert shown["steps"][0]["request"]["body"]["firstName"] == "Grace"
    missing = cli("exec", str(recipe), "--key", "99", "--dry-run", "--db", "runs.db")
    assert missing.returncode == 2
    assert 'no row of leads has id "99"' in missing.stderr
    assert "Traceback" not in missing.stderr


def test_lint_connect_checks_the_example_table(cli: Cli, tmp_path: Path) -> None:
    recipe = _example(tmp_path)
    res = cli("lint", str(recipe.parent), "--connect", "--ignore", "ENV002")
    assert (res.returncode, res.stdout) == (0, "1 recipe(s) checked, no problems\n")
    recipe.write_text(recipe.read_text().replace("loops_contact_id:", "loops_id:"))
    res = cli("lint", str(recipe.parent), "--connect", "--ignore", "ENV002", "--no-snippets")
    assert res.returncode == 1
    assert res.stdout.splitlines()[0] == (
        'recipes/crm-leads-to-loops.yaml:19:3: error: write_back column "loops_id" is not in '
        'leads (did you mean "loops_contact_id"?); add it to the table first [DBT004]'
    )


def test_notify_sql_prints_the_trigger(cli: Cli) -> None:
    res = cli("db", "notify-sql", "crm.leads")
    assert res.returncode == 0
    assert "PERFORM pg_notify('automations_tables', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);" in (
        res.stdout
    )
    assert 'AFTER INSERT OR UPDATE ON "crm"."leads"' in res.stdout
