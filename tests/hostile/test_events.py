"""The hostile corpus for events, met by the real runner: poison JSON is answered 400 and
recorded nowhere; an event over 8 KB (a webhook body, a CSV row) runs on all of its data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.conftest import (
    LOOPS_HOOK,
    Fakes,
    StartRunner,
    append,
    dumps,
    standard_headers,
    write_recipe,
)

pytestmark = pytest.mark.acceptance

TABLE = """
name: notes
trigger:
  table: {path: data/leads.csv, key: Email, existing_rows: skip}
only_run_if: "Notes != null && Notes != ''"
actions:
  - loops.send_event: {email: /Email, eventName: noted}
"""

POISON = {
    "nan": b'{"email": "a@example.com", "n": NaN}',
    "infinity": b'{"email": "a@example.com", "n": -Infinity}',
    "1e999": b'{"email": "a@example.com", "n": 1e999}',
    "lone-surrogate": b'{"email": "a@example.com", "note": "\\ud800"}',
    "970-levels": b'{"email": "a@example.com", "deep": ' + b"[" * 970 + b"]" * 970 + b"}",
    "4301-digits": b'{"email": "a@example.com", "n": ' + b"7" * 4301 + b"}",
}


def test_poison_json_is_400_and_recorded_nowhere(
    recipes_dir: Path,
    start_runner: StartRunner,
    fakes: Fakes,
) -> None:
    write_recipe(recipes_dir, "hook.yaml", LOOPS_HOOK)
    runner = start_runner(recipes_dir)
    for name, body in POISON.items():
        res = runner.post("/hooks/loops", body, standard_headers(body))
        assert res.status_code == 400, (name, res.text)
        assert "Traceback" not in res.text
    assert runner.count_runs() == 0
    assert "Traceback" not in runner.log
    good = dumps({"email": "after@example.com"})
    assert runner.post("/hooks/loops", good, standard_headers(good)).status_code == 202
    runner.wait_runs("loops-hook", 1)
    assert [e["body"]["email"] for e in fakes.loops_events()] == ["after@example.com"]


def test_a_webhook_over_8_kb_runs_on_all_of_it(
    recipes_dir: Path,
    start_runner: StartRunner,
    fakes: Fakes,
) -> None:
    # issue 9: a signed 8,255-byte delivery was answered 202, then ran on a cut copy ("email:
    # got nothing"); the field the recipe reads comes after 8 KB of padding
    write_recipe(recipes_dir, "hook.yaml", LOOPS_HOOK)
    runner = start_runner(recipes_dir)
    body = dumps({"pad": "x" * 8_217, "email": "whole@example.com"})
    assert len(body) == 8_255
    res = runner.post("/hooks/loops", body, standard_headers(body))
    assert res.status_code == 202
    runner.wait_runs("loops-hook", 1)
    [run] = runner.runs()
    assert run["status"] == "succeeded"
    assert runner.show(run["id"])["event"]["email"] == "whole@example.com"
    assert [e["body"]["email"] for e in fakes.loops_events()] == ["whole@example.com"]


def test_a_csv_row_with_a_9000_character_cell_runs(
    recipes_dir: Path,
    start_runner: StartRunner,
    fakes: Fakes,
) -> None:
    # issue 9: such a row ran "skipped", silently: its condition saw the cut marker
    leads = recipes_dir / "data" / "leads.csv"
    leads.write_text("Email,Notes\n")
    write_recipe(recipes_dir, "notes.yaml", TABLE)
    runner = start_runner(recipes_dir)
    append(leads, "long@example.com," + "n" * 9_000 + "\n")
    runner.wait_runs("notes", 1)
    [run] = runner.runs()
    assert run["status"] == "succeeded"
    assert runner.show(run["id"])["event"]["Notes"] == "n" * 9_000
    assert [e["body"]["email"] for e in fakes.loops_events()] == ["long@example.com"]
