"""Lint checks for what the vendors refuse but their schemas do not say (issue 14)."""

from __future__ import annotations

from collections.abc import Callable

from automations.diagnostics import Severity
from automations.recipes.compiler import LoadResult
from tests.recipes.conftest import codes


def test_loops_length_is_counted_in_utf16_units(compile_recipe: Callable[..., LoadResult]) -> None:
    emoji = "\U0001f600"
    ok = compile_recipe(
        f"""
        name: ev
        trigger:
          table: {{path: leads.csv, key: Email}}
        actions:
          - loops.update_contact: {{email: /Email, mood: "{emoji * 250}"}}
        """
    )
    assert ok.diagnostics == ()
    over = compile_recipe(
        f"""
        name: ev
        trigger:
          table: {{path: leads.csv, key: Email}}
        actions:
          - loops.update_contact: {{email: /Email, mood: "{emoji * 251}"}}
        """
    )
    assert [(d.code, d.message) for d in over.diagnostics] == [
        ("VND002", "Loops accepts at most 500 characters per value; this one has 502")
    ]


def test_loops_event_properties_are_scalars(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(
        """
        name: ev
        trigger:
          table: {path: leads.csv, key: Email}
        actions:
          - loops.send_event:
              email: /Email
              eventName: signup
              eventProperties: {plan: {name: pro}, seats: 3, tags: [a, b], who: /First Name}
        """
    )
    assert codes(result.diagnostics) == [("VND003", 8, 31), ("VND003", 8, 60)]
    assert result.diagnostics[0].message == (
        "Loops event properties are text, numbers or true/false, not an object: write one "
        "property per value (planName: Pro, seats: 3)"
    )
    assert "not a list" in result.diagnostics[1].message


def test_quo_reserved_source(compile_recipe: Callable[..., LoadResult]) -> None:
    base = """
        name: c
        trigger:
          table: {path: leads.csv, key: Email}
        actions:
          - quo.create_contact: {defaultFields: {firstName: /First Name}, source: %s}
        """
    for reserved in ("csv", "openphone-import", "zapier", "other"):
        result = compile_recipe(base % reserved)
        assert [d.code for d in result.diagnostics] == ["VND004"], reserved
        assert result.diagnostics[0].message.startswith(f'"{reserved}" is a source Quo reserves')
    for fine in ("clay", "custom-hubspot", "/Company"):
        assert compile_recipe(base % fine).diagnostics == (), fine


def test_not_idempotent_quo_action_on_updated_rows_warns(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    result = compile_recipe(
        """
        name: c
        trigger:
          table: {path: leads.csv, key: Email, run_on: [added, updated]}
        actions:
          - quo.create_contact: {defaultFields: {firstName: /First Name}}
          - loops.update_contact: {email: /Email}
          - quo.send_sms: {from: "${QUO_FROM}", to: [/Phone], content: hi}
        """
    )
    assert codes(result.diagnostics) == [("IDP001", 5, 5), ("IDP001", 7, 5)]
    assert {d.severity for d in result.diagnostics} == {Severity.WARNING}
    assert result.diagnostics[0].message == (
        "quo.create_contact runs again each time a row changes (run_on: [updated]) and each run "
        "creates another contact (Quo allows duplicates): use quo.upsert_contact"
    )
    assert result.recipe is not None
    added_only = compile_recipe(
        """
        name: c
        trigger:
          table: {path: leads.csv, key: Email}
        actions:
          - quo.create_contact: {defaultFields: {firstName: /First Name}}
        """
    )
    assert added_only.diagnostics == ()
