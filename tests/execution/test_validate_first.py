"""Validate before the first send (issue 8): a run that cannot render fails with nothing sent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from automations.recipes.compiler import load_recipe_text
from automations.records import RunStatus, StepStatus
from tests.execution.conftest import ENV, Harness

TWO_STEPS = """
name: two-steps
trigger:
  table: {path: leads.csv, key: Email}
actions:
  - id: contact
    quo.create_contact:
      defaultFields:
        firstName: /First Name
        phoneNumbers: [{name: primary, value: /Phone}]
  - id: sms
    quo.send_sms:
      from: ${QUO_FROM}
      to: [/Mobile]
      content: "Hi {/First Name}!"
  - id: welcome
    loops.send_event: {email: /Email, eventName: signup, eventProperties: {note: /Note}}
"""

ROW = {
    "Email": "ada@example.com",
    "First Name": "Ada",
    "Phone": "(555) 555-0100",
    "Mobile": "(555) 555-0101",
    "Note": "hi",
}


def with_recipe(harness: Harness, tmp_path: Path, text: str) -> Harness:
    (tmp_path / "leads.csv").write_text("Email,First Name,Phone,Mobile,Note\n")
    result = load_recipe_text(
        text, "two.yaml", base_dir=tmp_path, env=ENV, source=tmp_path / "two.yaml"
    )
    assert result.recipe is not None, result.diagnostics
    return replace(harness, recipe=result.recipe)


def test_an_sms_to_a_number_that_cannot_be_read_fails_the_run_before_the_contact_is_created(
    harness: Harness, tmp_path: Path
) -> None:
    h = with_recipe(harness, tmp_path, TWO_STEPS)
    run = h.run({**ROW, "Mobile": "call me maybe"})
    assert (h.quo.count, h.loops.count) == (0, 0)
    assert run.status is RunStatus.FAILED
    [step] = run.steps  # only the step at fault is recorded; nothing before it started
    assert (step.index, step.step_id, step.status) == (1, "sms", StepStatus.FAILED)
    assert step.error is not None and step.error.startswith("to[0]: ")
    assert run.error == f"sms: {step.error} (checked before sending: nothing was sent)"
    assert h.store.get_run(run.id) == run


def test_a_body_the_vendor_would_refuse_fails_the_run_before_anything_is_sent(
    harness: Harness, tmp_path: Path
) -> None:
    h = with_recipe(harness, tmp_path, TWO_STEPS)
    run = h.run({**ROW, "Note": "x" * 501})  # over Loops' 500 characters, in the last step
    assert (h.quo.count, h.loops.count) == (0, 0)
    assert run.status is RunStatus.FAILED
    assert [(s.step_id, s.status) for s in run.steps] == [("welcome", StepStatus.FAILED)]
    assert run.error is not None and "nothing was sent" in run.error


def test_a_step_skipped_by_its_condition_is_not_validated(harness: Harness, tmp_path: Path) -> None:
    text = TWO_STEPS.replace(
        "  - id: sms\n", "  - id: sms\n    only_run_if: \"Mobile != 'none'\"\n"
    )
    h = with_recipe(harness, tmp_path, text)
    run = h.run({**ROW, "Mobile": "none"})
    assert run.status is RunStatus.SUCCEEDED
    assert [s.status for s in run.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,
        StepStatus.SUCCEEDED,
    ]
    assert (h.quo.count, h.loops.count) == (1, 1)


def test_a_step_reading_an_earlier_response_is_validated_when_its_turn_comes(
    harness: Harness,
) -> None:
    # the harness's SMS reads /@contact.data.id: it can only be rendered after the contact
    run = harness.run({"Email": "a@example.com", "First Name": "Ada", "Phone": "(555) 555-0100"})
    assert run.status is RunStatus.SUCCEEDED
    assert [r.path for r in harness.quo.received] == ["/v1/contacts", "/v1/messages"]


def test_a_dry_run_is_validated_the_same_way(harness: Harness, tmp_path: Path) -> None:
    h = with_recipe(harness, tmp_path, TWO_STEPS)
    run = h.run({**ROW, "Mobile": "12"}, dry_run=True)
    assert run.status is RunStatus.FAILED
    assert [(s.step_id, s.status) for s in run.steps] == [("sms", StepStatus.FAILED)]
    assert h.quo.count == 0


def test_a_step_whose_condition_reads_an_earlier_response_is_checked_in_its_turn(
    harness: Harness, tmp_path: Path
) -> None:
    text = TWO_STEPS.replace("  - id: sms\n", '  - id: sms\n    only_run_if: "@contact != null"\n')
    h = with_recipe(harness, tmp_path, text)
    run = h.run({**ROW, "Mobile": "call me maybe"})
    assert run.status is RunStatus.FAILED
    assert [(s.step_id, s.status) for s in run.steps] == [
        ("contact", StepStatus.SUCCEEDED),
        ("sms", StepStatus.FAILED),
    ]
    assert run.error is not None and "nothing was sent" not in run.error
    assert [r.path for r in h.quo.received] == ["/v1/contacts"]
