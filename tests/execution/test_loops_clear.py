"""An explicit null in ``loops.update_contact`` clears the property in Loops (issue 14)."""

from __future__ import annotations

from pathlib import Path

from automations.diagnostics import Severity
from automations.recipes.compiler import load_recipe_text
from automations.records import RunStatus
from tests.execution.conftest import ENV, Harness

CLEARING = """
name: clear
trigger:
  table: {path: leads.csv, key: Email}
actions:
  - loops.update_contact:
      email: /Email
      lastName: null
      company: /Company
"""


def test_written_null_is_sent_and_an_empty_column_is_left_out(
    harness: Harness, tmp_path: Path
) -> None:
    (tmp_path / "leads.csv").write_text("Email,Company\n")
    result = load_recipe_text(CLEARING, "c.yaml", base_dir=tmp_path, env=ENV)
    assert [(d.code, d.line, d.severity) for d in result.diagnostics] == [
        ("VND006", 8, Severity.WARNING)
    ]
    assert result.diagnostics[0].message.startswith(
        "null clears lastName in Loops (Loops resets a property sent as null)"
    )
    assert result.recipe is not None
    harness.loops.contacts["ada@example.com"] = {"id": "c1", "lastName": "Lovelace"}
    harness.recipe = result.recipe
    run = harness.run({"Email": "ada@example.com", "Company": ""})
    assert run.status is RunStatus.SUCCEEDED
    [received] = harness.loops.received
    assert received.body == {"email": "ada@example.com", "lastName": None, "company": ""}
    assert harness.loops.contacts["ada@example.com"]["lastName"] is None
    run2 = harness.run({"Email": "ada@example.com"}, event_key="k2")
    assert run2.status is RunStatus.SUCCEEDED
    assert harness.loops.received[1].body == {"email": "ada@example.com", "lastName": None}
