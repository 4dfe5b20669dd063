"""The mistakes people make most: each gets its own code, its exact position and the fix."""

from __future__ import annotations

from collections.abc import Callable

from automations.diagnostics import Diagnostic, Severity
from automations.recipes.compiler import LoadResult

Compile = Callable[..., LoadResult]

HEAD = """
name: lead
trigger:
  table: {path: leads.csv, key: Email}
"""


def only(result: LoadResult) -> Diagnostic:
    assert len(result.diagnostics) == 1, [d.format() for d in result.diagnostics]
    return result.diagnostics[0]


def sms(content: str, sender: str = "${QUO_FROM}") -> str:
    return (
        HEAD
        + f"actions:\n  - quo.send_sms:\n      from: {sender}\n      to: [/Phone]\n"
        + f"      content: {content}\n"
    )


def test_unquoted_brace_reference_is_a_mapping(compile_recipe: Compile) -> None:
    d = only(compile_recipe(sms("{/First Name}")))
    assert (d.code, d.line, d.column, d.severity) == ("YAML006", 8, 16, Severity.ERROR)
    assert d.message == (
        "{/First Name} without quotes is a YAML mapping, not text; quote the value: "
        'content: "{/First Name}"'
    )


def test_dollar_name_without_braces(compile_recipe: Compile) -> None:
    d = only(compile_recipe(sms("hi", sender="$QUO_FROM")))
    assert (d.code, d.line, d.column, d.severity) == ("ENV003", 6, 13, Severity.ERROR)
    assert d.message == (
        "$QUO_FROM without braces is sent as the text $QUO_FROM; environment variables are "
        "written ${QUO_FROM}"
    )


def test_dollar_name_inside_text_is_a_warning(compile_recipe: Compile) -> None:
    d = only(compile_recipe(sms('"Your code: $PROMO_CODE"')))
    assert (d.code, d.line, d.column, d.severity) == ("ENV003", 8, 28, Severity.WARNING)
    assert "are written ${PROMO_CODE}" in d.message
    assert "# automations: ignore[ENV003]" in d.message


def test_tab_indentation_names_the_tabs(compile_recipe: Compile) -> None:
    text = "name: lead\ntrigger:\n\ttable: {path: leads.csv, key: Email}\nactions: []\n"
    d = only(compile_recipe(text))
    assert (d.code, d.line, d.column) == ("YAML005", 3, 1)
    assert d.message.startswith(
        "line 3 is indented with a tab character (at column 1); YAML indentation must be "
        "spaces: replace each tab with spaces"
    )


def test_several_tabs_on_a_line(compile_recipe: Compile) -> None:
    text = "name: lead\ntrigger:\n  table:\n \t\tpath: leads.csv\n"
    d = only(compile_recipe(text))
    assert (d.code, d.line, d.column) == ("YAML005", 4, 2)
    assert d.message.startswith("line 4 is indented with 2 tab characters (at columns 2, 3)")


def test_jmespath_double_quotes_make_a_column_name(compile_recipe: Compile) -> None:
    text = HEAD + "only_run_if: 'Company == \"Acme\"'\n" + sms("hi").split("\n", 4)[4]
    d = only(compile_recipe(text))
    assert (d.code, d.line, d.column) == ("EXP002", 4, 26)
    assert d.message == (
        '"Acme" in double quotes is a column name in JMESPath, and there is no column "Acme"; '
        "text values take single quotes: only_run_if: \"Company == 'Acme'\""
    )


def test_number_compared_with_a_csv_column(compile_recipe: Compile) -> None:
    text = HEAD + "only_run_if: 'Score > `50`'\n" + sms("hi").split("\n", 4)[4]
    d = only(
        compile_recipe(text, csv="Email,First Name,Company,Phone,Score\na@example.com,A,X,1,60\n")
    )
    assert (d.code, d.line, d.column) == ("EXP003", 4, 15)
    assert d.message == (
        "Score comes from a CSV file, where every value is text: Score > `50` compares text "
        "with a number, which is never true, so every row would be skipped; convert it: "
        "to_number(Score) > `50`"
    )


def test_to_number_is_clean(compile_recipe: Compile) -> None:
    text = HEAD + "only_run_if: 'to_number(Score) > `50`'\n" + sms("hi").split("\n", 4)[4]
    result = compile_recipe(text, csv="Email,Phone,Score\na@example.com,1,60\n")
    assert result.diagnostics == ()


def test_mustache_and_bare_column_inside_text(compile_recipe: Compile) -> None:
    result = compile_recipe(sms('"Hi /First Name, {{Company}}"'))
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [
        ("REF005", 8, 20),
        ("REF005", 8, 33),
    ]
    assert [d.message for d in result.diagnostics] == [
        "/First Name inside text is sent as written: a column inside text is written "
        "{/First Name} (a whole value may be just /First Name)",
        "{{Company}} is sent as written: columns inside text are written {/Company} "
        "(one pair of braces and a slash)",
    ]


def test_whole_value_reference_and_urls_are_not_bare_columns(compile_recipe: Compile) -> None:
    text = sms('"{/First Name}: see https://example.com/Company and a/Phone"')
    assert compile_recipe(text).diagnostics == ()


def test_sms_fixed_text_over_the_limit(compile_recipe: Compile) -> None:
    d = only(compile_recipe(sms('"Hi {/First Name} ' + "x" * 1600 + '"')))
    assert (d.code, d.line, d.column) == ("VND005", 8, 16)
    assert d.message == (
        "the fixed text of this SMS alone is 1,604 characters, over Quo's 1,600 limit, before "
        "any column is filled in: every send would be refused; shorten the text"
    )


def test_dollar_name_as_a_webhook_secret(compile_recipe: Compile) -> None:
    text = (
        "name: hook\ntrigger:\n  webhook:\n    path: /h\n"
        "    verify: {scheme: standard-webhooks, secret: $HOOK_SECRET}\n"
        "actions:\n  - loops.send_event: {email: a@example.com, eventName: x}\n"
    )
    d = only(compile_recipe(text))
    assert (d.code, d.line, d.column, d.severity) == ("ENV003", 5, 49, Severity.ERROR)
    assert d.message == (
        "$HOOK_SECRET without braces is the text $HOOK_SECRET, not the variable; environment "
        "variables are written ${HOOK_SECRET}"
    )
