"""``quo.upsert_contact`` against the stateful Quo fake: one contact per key, however often."""

from __future__ import annotations

from pathlib import Path

from automations.model import Recipe
from automations.recipes.compiler import load_recipe_text
from automations.recipes.upsert import upsert_key
from automations.records import RunStatus, StepStatus
from tests.execution.conftest import ENV, Harness

UPSERT = """
name: lead-upsert
trigger:
  table: {path: leads.csv, key: Email}
actions:
  - id: lead
    quo.upsert_contact:
      externalId: /Email
      source: clay
      defaultFields:
        firstName: /First Name
        company: /Company
        phoneNumbers: [{name: primary, value: /Phone}]
  - id: sms
    quo.send_sms:
      from: ${QUO_FROM}
      to: [/Phone]
      content: "Hi {/First Name}, contact {/@lead.data.id}"
"""


def _recipe(tmp_path: Path) -> Recipe:
    (tmp_path / "leads.csv").write_text("Email,First Name,Company,Phone\n")
    result = load_recipe_text(UPSERT, "u.yaml", base_dir=tmp_path, env=ENV)
    assert result.diagnostics == (), result.diagnostics
    assert result.recipe is not None
    return result.recipe


def test_the_upsert_compiles_to_find_update_create(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    assert [(a.id, a.kind, a.reads_steps, a.response_as) for a in recipe.actions] == [
        ("lead:find", "quo.find_contacts", frozenset(), None),
        ("lead:update", "quo.update_contact", frozenset({"lead:find"}), "lead"),
        ("lead:create", "quo.create_contact", frozenset({"lead:find"}), "lead"),
        ("sms", "quo.send_sms", frozenset({"lead"}), None),
    ]
    assert upsert_key(recipe.actions, {"Email": "a+b@example.com"}) == "a+b@example.com"


def test_the_same_lead_twice_is_one_contact_updated(harness: Harness, tmp_path: Path) -> None:
    harness.recipe = _recipe(tmp_path)
    first = harness.run(
        {"Email": "ada+x@example.com", "First Name": "Ada", "Company": "AE", "Phone": "5555550100"}
    )
    assert first.status is RunStatus.SUCCEEDED
    assert [s.status for s in first.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
    ]
    [contact] = harness.quo.contacts
    assert contact["defaultFields"]["company"] == "AE"
    # a second event for the same lead (another run: its row changed)
    second = harness.run(
        {"Email": "ada+x@example.com", "First Name": "Ada", "Company": "BB", "Phone": "5555550100"},
        event_key="k2",
    )
    assert second.status is RunStatus.SUCCEEDED
    assert [s.status for s in second.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,
        StepStatus.SUCCEEDED,
    ]
    assert len(harness.quo.contacts) == 1
    [contact] = harness.quo.contacts
    assert (contact["externalId"], contact["defaultFields"]["company"]) == (
        "ada+x@example.com",
        "BB",
    )
    assert contact["defaultFields"]["phoneNumbers"][0]["value"] == "+15555550100"
    # every request the fake saw, in order, and what each run recorded
    assert [(r.method, r.path, r.outcome) for r in harness.quo.received] == [
        ("GET", "/v1/contacts", 200),
        ("POST", "/v1/contacts", 201),
        ("POST", "/v1/messages", 202),
        ("GET", "/v1/contacts", 200),
        ("PATCH", f"/v1/contacts/{contact['id']}", 200),
        ("POST", "/v1/messages", 202),
    ]
    lookup = second.steps[0].request
    assert lookup is not None
    assert lookup["url"] == (
        "https://api.openphone.com/v1/contacts?externalIds=ada%2Bx%40example.com&maxResults=1"
    )
    # later steps read the contact, whichever write ran
    texts = [m["text"] for m in harness.quo.sent_messages]
    assert texts == [f"Hi Ada, contact {contact['id']}"] * 2


def test_a_skipped_upsert_skips_both_writes(harness: Harness, tmp_path: Path) -> None:
    text = UPSERT.replace(
        "  - id: lead\n", "  - id: lead\n    only_run_if: \"Company == 'none'\"\n"
    )
    (tmp_path / "leads.csv").write_text("Email,First Name,Company,Phone\n")
    result = load_recipe_text(text, "u.yaml", base_dir=tmp_path, env=ENV)
    assert result.recipe is not None
    harness.recipe = result.recipe
    run = harness.run(
        {"Email": "a@example.com", "First Name": "A", "Company": "X", "Phone": "5555550100"}
    )
    assert [s.status for s in run.steps][:3] == [StepStatus.SKIPPED] * 3
    assert harness.quo.contacts == []


def test_runs_of_an_upserting_recipe_are_ordered_by_the_upsert_key(tmp_path: Path) -> None:
    from automations.execution.executor import new_run
    from automations.records import TriggerKind
    from automations.runner.ordering import order_key_for

    recipe = _recipe(tmp_path)
    a1 = new_run(recipe.name, TriggerKind.WEBHOOK, "e1", {"Email": "a@example.com"})
    a2 = new_run(recipe.name, TriggerKind.WEBHOOK, "e2", {"Email": "a@example.com"})
    b = new_run(recipe.name, TriggerKind.WEBHOOK, "e3", {"Email": "b@example.com"})
    keys = [order_key_for(r, recipe) for r in (a1, a2, b)]
    assert keys == [
        "lead-upsert:upsert:a@example.com",
        "lead-upsert:upsert:a@example.com",
        "lead-upsert:upsert:b@example.com",
    ]
    # a recipe without an upsert keeps its source's key (none for a webhook)
    assert order_key_for(a1, None) is None
