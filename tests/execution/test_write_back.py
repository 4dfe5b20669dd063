"""``write_back`` in the executor, into a real SQLite table: the values a run writes (step
responses, ``/@error``), when it writes none (skipped, dry run), a crash between the write-back
and the final status (resumed: written again, nothing resent), a missing column (the run fails
saying why; its steps went out once)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from automations.recipes.compiler import load_recipe_text
from automations.records import RunStatus, StepStatus
from automations.stores import MemoryStore
from tests.execution.conftest import ENV, Crash, Harness
from tests.fakes import VirtualClock
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

pytestmark = pytest.mark.integration

RECIPE = """
name: crm-lead
trigger:
  table: {database: crm.db, table: leads, key: id}
only_run_if: "phone != null"
actions:
  - id: contact
    quo.create_contact:
      defaultFields: {firstName: /name, phoneNumbers: [{name: primary, value: /phone}]}
  - id: sms
    quo.send_sms: {from: "${QUO_FROM}", to: [/phone], content: "Hi {/name}!"}
write_back:
  contact_id: /@contact.data.id
  sms: "{/@sms.data.status} at {/@sms.data.createdAt}"
  automation_error: /@error
"""

ROW = {"id": 7, "name": "Ada", "phone": "(555) 555-0100"}
COLUMNS = "id INTEGER PRIMARY KEY, name TEXT, phone TEXT, contact_id TEXT, sms TEXT"


class CrashOnFinal(MemoryStore):
    """Dies (once) when a run's final status is written: after its write-back."""

    armed = True

    def update_run(self, run_id: str, **fields: object) -> None:
        if self.armed and fields.get("status") in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            self.armed = False
            raise Crash
        super().update_run(run_id, **fields)


def _harness(tmp_path: Path, store: MemoryStore, columns: str) -> Harness:
    db = sqlite3.connect(tmp_path / "crm.db")
    db.execute(f"CREATE TABLE leads ({columns})")
    db.execute("INSERT INTO leads (id, name, phone) VALUES (7, 'Ada', '(555) 555-0100')")
    db.commit()
    db.close()
    result = load_recipe_text(RECIPE, "crm-lead.yaml", base_dir=tmp_path, env=ENV)
    assert result.recipe is not None, result.diagnostics
    clock = VirtualClock()
    return Harness(store, QuoFake(clock=clock), LoopsFake(clock=clock), clock, result.recipe, ENV)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    yield _harness(tmp_path, MemoryStore(), COLUMNS + ", automation_error TEXT")


def _row(tmp_path: Path) -> tuple[Any, ...]:
    db = sqlite3.connect(tmp_path / "crm.db")
    try:
        return tuple(db.execute("SELECT contact_id, sms, automation_error FROM leads").fetchone())
    finally:
        db.close()


def test_a_run_writes_its_results_into_its_row(harness: Harness, tmp_path: Path) -> None:
    run = harness.run(ROW)
    assert run.status is RunStatus.SUCCEEDED and run.error is None
    contact = run.steps[0].response_body["data"]
    sms = run.steps[1].response_body["data"]
    assert _row(tmp_path) == (contact["id"], f"{sms['status']} at {sms['createdAt']}", None)
    assert harness.store.get_run(run.id).status is RunStatus.SUCCEEDED


def test_a_failed_run_writes_its_error(harness: Harness, tmp_path: Path) -> None:
    harness.script_for("/v1/messages", httpx.Response(400, json={"message": "bad number"}))
    run = harness.run(ROW)
    assert run.status is RunStatus.FAILED
    contact_id, sms, error = _row(tmp_path)
    assert contact_id == run.steps[0].response_body["data"]["id"]
    assert sms == " at "  # the SMS step has no response: its parts are empty text
    assert error == run.error and error.startswith("sms: ")


def test_a_skipped_run_and_a_dry_run_write_nothing(harness: Harness, tmp_path: Path) -> None:
    assert harness.run({**ROW, "phone": None}).status is RunStatus.SKIPPED
    dry = harness.run(ROW, dry_run=True, event_key="k2")
    assert dry.dry_run and dry.status is RunStatus.SUCCEEDED
    assert _row(tmp_path) == (None, None, None)
    assert harness.quo.received == []


def test_a_crash_after_the_write_back_writes_back_again_and_sends_nothing_again(
    tmp_path: Path,
) -> None:
    harness = _harness(tmp_path, CrashOnFinal(), COLUMNS + ", automation_error TEXT")
    with pytest.raises(Crash):
        harness.run(ROW)
    (left,) = harness.store.unfinished()
    assert left.status is RunStatus.RUNNING  # the final status was never written
    assert [s.status for s in left.steps] == [StepStatus.SUCCEEDED] * 2
    written = _row(tmp_path)
    assert written[0] is not None
    sqlite3.connect(tmp_path / "crm.db").execute(
        "UPDATE leads SET contact_id = NULL"
    ).connection.commit()
    resumed = harness.run(existing=left)
    assert resumed.status is RunStatus.SUCCEEDED
    assert len(harness.quo.received) == 2  # contact and SMS, once each
    assert _row(tmp_path) == written
    assert harness.store.get_run(left.id).status is RunStatus.SUCCEEDED


def test_a_missing_column_fails_the_run_saying_why(tmp_path: Path) -> None:
    harness = _harness(tmp_path, MemoryStore(), COLUMNS)  # no automation_error column
    run = harness.run(ROW)
    assert run.status is RunStatus.FAILED
    assert [s.status for s in run.steps] == [StepStatus.SUCCEEDED] * 2
    assert run.error is not None
    assert run.error.startswith(
        "write_back: cannot write back into leads in database "
        f"{tmp_path.resolve()}/crm.db: no such column: automation_error"
    )
    assert harness.store.get_run(run.id) == replace(
        harness.store.get_run(run.id), status=RunStatus.FAILED, error=run.error
    )
    assert len(harness.quo.received) == 2
