"""Semantic checks: JMESPath, columns, steps, vendor bodies, schedules, secrets, env."""

from __future__ import annotations

from collections.abc import Callable

from automations.diagnostics import Severity
from automations.recipes.compiler import LoadResult
from tests.recipes.conftest import codes
from tests.recipes.test_loader import GOOD


def test_jmespath_syntax_error_points_into_the_expression(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    result = compile_recipe(GOOD.replace("Phone != null && Phone != ''", "Phone != null &&"))
    assert [d.code for d in result.diagnostics] == ["EXP001"]
    assert result.diagnostics[0].line == 4
    assert result.diagnostics[0].column > 14


def test_unknown_column_did_you_mean(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("to: [/Phone]", "to: [/Phnoe]"))
    assert codes(result.diagnostics) == [("REF001", 8, 12)]
    assert result.diagnostics[0].message.startswith(
        'unknown column "Phnoe" (did you mean "Phone"?)'
    )


def test_unknown_column_inside_text(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("{/First Name}", "{/Frist Name}"))
    assert codes(result.diagnostics) == [("REF001", 9, 21)]
    assert '(did you mean "First Name"?)' in result.diagnostics[0].message


def test_unknown_column_in_condition(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace("Phone != null &&", "Phnoe != null &&"))
    assert [d.code for d in result.diagnostics] == ["REF001"]
    assert result.diagnostics[0].line == 4


def test_columns_mapping_defines_the_row(compile_recipe: Callable[..., LoadResult]) -> None:
    text = """
    name: hook
    trigger:
      webhook: {path: /h, verify: {scheme: standard-webhooks, secret: "${HOOK_SECRET}"}}
    columns:
      Email: contact.email
    actions:
      - loops.update_contact: {email: /Email, firstName: /First}
    """
    result = compile_recipe(text)
    assert [(d.code, d.line) for d in result.diagnostics] == [("REF001", 7)]


def test_step_reference_must_name_an_earlier_step(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    text = (
        GOOD + "  - id: second\n    loops.send_event: {email: /Email, eventName: x, n: /@frst.id}\n"
    )
    result = compile_recipe(text.replace("  - quo.send_sms:", "  - id: first\n    quo.send_sms:"))
    assert [d.code for d in result.diagnostics] == ["REF002"]
    assert '(did you mean "first"?)' in result.diagnostics[0].message


def test_vendor_static_checks(compile_recipe: Callable[..., LoadResult]) -> None:
    text = GOOD.replace("to: [/Phone]", 'to: ["+15555550100", "+15555550101"]')
    result = compile_recipe(text)
    assert [d.code for d in result.diagnostics] == ["SCH004"]
    assert "at most 1" in result.diagnostics[0].message
    result = compile_recipe(GOOD.replace("to: [/Phone]", 'to: ["555-0100"]'))
    assert [d.code for d in result.diagnostics] == ["VND001"]
    assert "E.164" in result.diagnostics[0].message


def test_vendor_content_length(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD.replace('"Hi {/First Name}!"', "x" * 1601))
    assert [d.code for d in result.diagnostics] == ["VND001"]
    assert "1600" in result.diagnostics[0].message


def test_loops_needs_email_or_user_id_and_event_name(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    text = """
    name: ev
    trigger:
      table: {path: leads.csv, key: Email}
    actions:
      - loops.send_event: {eventProperties: {plan: pro}}
      - loops.update_contact: {firstName: /First Name}
    """
    result = compile_recipe(text)
    assert [(d.code, d.line) for d in result.diagnostics] == [("SCH002", 5), ("VND001", 6)]
    assert "eventName" in result.diagnostics[0].message
    assert "email or userId" in result.diagnostics[1].message


def test_loops_value_length(compile_recipe: Callable[..., LoadResult]) -> None:
    text = f"""
    name: ev
    trigger:
      table: {{path: leads.csv, key: Email}}
    actions:
      - loops.update_contact: {{email: /Email, notes: {"y" * 501}}}
    """
    result = compile_recipe(text)
    assert [d.code for d in result.diagnostics] == ["VND002"]


def test_schedule_checks(compile_recipe: Callable[..., LoadResult]) -> None:
    base = "name: s\ntrigger:\n  schedule: {%s}\nactions:\n  - http.request: {method: GET, url: https://x.example/}\n"
    assert [
        d.code
        for d in compile_recipe(base % "cron: '0 9 * * 1-5', timezone: Mars/Base").diagnostics
    ] == ["SCD002"]
    assert [d.code for d in compile_recipe(base % "cron: '61 9 * * *'").diagnostics] == ["SCD001"]
    assert [d.code for d in compile_recipe(base % "cron: '0 9 * * 7'").diagnostics] == []
    assert [d.code for d in compile_recipe(base % "every: 5x").diagnostics] == ["SCD003"]
    assert [d.code for d in compile_recipe(base % "every: 90s").diagnostics] == []


def test_pasted_secrets(compile_recipe: Callable[..., LoadResult]) -> None:
    text = """
    name: hook
    trigger:
      webhook:
        path: /h
        verify: {scheme: standard-webhooks, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}
    actions:
      - http.request:
          method: POST
          url: https://x.example/a
          headers: {Authorization: Bearer 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c}
    """
    result = compile_recipe(text)
    assert [d.code for d in result.diagnostics] == ["SEC001", "SEC001"]
    assert all("environment variable" in d.message for d in result.diagnostics)
    assert "MfKQ9r8" not in " ".join(d.message for d in result.diagnostics)


def test_verify_none_and_unset_env_are_warnings(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    text = """
    name: hook
    trigger:
      webhook: {path: /h, verify: {scheme: none}}
    actions:
      - http.request: {method: POST, url: "https://x.example/{/id}", headers: {X-Key: "${NOT_SET}"}}
    """
    result = compile_recipe(text)
    assert [(d.code, d.severity) for d in result.diagnostics] == [
        ("SEC002", Severity.WARNING),
        ("ENV001", Severity.WARNING),
    ]
    assert result.recipe is not None


def test_url_host_cannot_come_from_a_column(compile_recipe: Callable[..., LoadResult]) -> None:
    text = """
    name: h
    trigger:
      table: {path: leads.csv, key: Email}
    actions:
      - http.request: {method: POST, url: "https://{/Company}/x"}
    """
    assert [d.code for d in compile_recipe(text).diagnostics] == ["REF004"]


def test_missing_provider_keys_are_warnings(compile_recipe: Callable[..., LoadResult]) -> None:
    result = compile_recipe(GOOD, env={"QUO_FROM": "+15555550199"})
    assert [(d.code, d.line, d.severity) for d in result.diagnostics] == [
        ("ENV002", 6, Severity.WARNING)
    ]
    assert "QUO_API_KEY or MATON_API_KEY" in result.diagnostics[0].message
    assert result.recipe is not None
    maton = compile_recipe(GOOD, env={"QUO_FROM": "+15555550199", "MATON_API_KEY": "m"})
    assert maton.diagnostics == ()
