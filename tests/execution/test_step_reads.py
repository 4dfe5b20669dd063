"""Steps that see earlier steps: an action's ``only_run_if`` reads ``@id`` (issue 14)."""

from __future__ import annotations

from pathlib import Path

from automations.conditions import quote_step_refs
from automations.model import Recipe
from automations.recipes.compiler import load_recipe_text
from automations.records import RunStatus, StepStatus
from tests.execution.conftest import ENV, Harness

GATED = """
name: gated
trigger:
  table: {path: leads.csv, key: Email}
actions:
  - id: contact
    quo.create_contact:
      defaultFields: {firstName: /First Name}
  - id: sms
    only_run_if: "@contact.data.defaultFields.firstName == 'Ada'"
    quo.send_sms:
      from: "${QUO_FROM}"
      to: [/Phone]
      content: "Hi {/@contact.data.defaultFields.firstName}"
  - id: event
    only_run_if: "@sms == null"
    loops.send_event: {email: /Email, eventName: notTexted}
"""


def _recipe(tmp_path: Path, text: str = GATED) -> Recipe:
    (tmp_path / "leads.csv").write_text("Email,First Name,Phone\n")
    result = load_recipe_text(text, "g.yaml", base_dir=tmp_path, env=ENV)
    assert result.diagnostics == (), result.diagnostics
    assert result.recipe is not None
    return result.recipe


def test_quote_step_refs_leaves_literals_and_the_current_node_alone() -> None:
    assert quote_step_refs("length(@find.data) == `0`") == 'length("@find".data) == `0`'
    assert quote_step_refs("Email == '@x' && @ != null") == "Email == '@x' && @ != null"
    assert quote_step_refs('"@a".b || @b_c.x') == '"@a".b || "@b_c".x'


def test_reads_steps_names_exactly_the_steps_read(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    assert [(a.id, a.reads_steps) for a in recipe.actions] == [
        ("contact", frozenset()),
        ("sms", frozenset({"contact"})),
        ("event", frozenset({"sms"})),
    ]


def test_a_condition_reading_a_step_decides_with_its_response(
    harness: Harness, tmp_path: Path
) -> None:
    harness.recipe = _recipe(tmp_path)
    run = harness.run({"Email": "ada@example.com", "First Name": "Ada", "Phone": "5555550100"})
    assert run.status is RunStatus.SUCCEEDED
    assert [s.status for s in run.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,
    ]
    assert harness.quo.sent_messages[0]["text"] == "Hi Ada"
    assert (harness.quo.count, harness.loops.count) == (2, 0)


def test_a_skipped_step_reads_as_null(harness: Harness, tmp_path: Path) -> None:
    harness.recipe = _recipe(tmp_path)
    run = harness.run({"Email": "bob@example.com", "First Name": "Bob", "Phone": "5555550100"})
    assert [s.status for s in run.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,
        StepStatus.SUCCEEDED,
    ]
    assert (harness.quo.count, harness.loops.count) == (1, 1)
    assert harness.loops.events == [{"email": "bob@example.com", "eventName": "notTexted"}]


def test_lint_checks_step_references_in_conditions(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("Email,First Name,Phone\n")
    text = GATED.replace("@contact.data.defaultFields", "@contatc.data.defaultFields", 1).replace(
        '"@sms == null"', '"@later == null && Emial != null"'
    )
    result = load_recipe_text(text, "g.yaml", base_dir=tmp_path, env=ENV)
    assert [(d.code, d.line, d.column, d.message) for d in result.diagnostics] == [
        (
            "REF002",
            10,
            19,
            '"@contatc" does not name an earlier step (did you mean "contact"?); give that step '
            "id: contatc and refer to it only from steps after it",
        ),
        (
            "REF002",
            16,
            19,
            '"@later" does not name an earlier step; give that step id: later and refer to it '
            "only from steps after it",
        ),
        (
            "REF001",
            16,
            37,
            'unknown column "Emial" in condition (did you mean "Email"?); columns come from '
            "the header of leads.csv",
        ),
    ]


def test_a_recipe_test_supplies_earlier_responses(tmp_path: Path) -> None:
    from automations.execution.preview import run_recipe_test
    from automations.model import RecipeTest

    recipe = _recipe(tmp_path)
    row = {"Email": "ada@example.com", "First Name": "Ada", "Phone": "5555550100"}
    answered = {"data": {"defaultFields": {"firstName": "Ada"}}}
    sms = {"method": "POST", "body": {"content": "Hi Ada"}}
    test = RecipeTest(
        "r",
        row,
        expect_requests=({}, sms, None),
        env=(("QUO_FROM", "+15555550199"),),
        responses=(("contact", answered), ("sms", {"data": {"status": "queued"}})),
    )
    assert run_recipe_test(recipe, test).problems == ()
    # without the response, the gated step is skipped and the event goes out
    bare = RecipeTest("r", row, expect_requests=({}, sms, None), env=test.env)
    assert run_recipe_test(recipe, bare).problems == (
        "requests[1]: the step was skipped",
        "requests[2]: expected the step to be skipped",
    )


def test_a_step_reference_can_index_a_list_response() -> None:
    from automations.templates import RenderContext, StepRef, parse_template

    ref = parse_template("/@found[0].userId")
    assert isinstance(ref, StepRef)
    assert ref.step == "found"
    ctx = RenderContext({}, {}, {"found": [{"userId": "u1"}], "lead:find": {"data": [{"id": 7}]}})
    assert ref.render(ctx) == "u1"
    assert parse_template("{/@lead:find.data[0].id}").render(ctx) == "7"
