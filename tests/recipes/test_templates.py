"""The reference language: /Column, {/Column}, fallbacks, step references, ${ENV}, //literal."""

from __future__ import annotations

from typing import Any

import pytest

from automations.errors import ConfigError
from automations.templates import (
    ColumnRef,
    EnvRef,
    Literal,
    RenderContext,
    StepRef,
    Text,
    parse_template,
)

ROW = {"First Name": "Ada", "Age": 36, "Tags": ["a", "b"], "Empty": "", "Nothing": None}


def render(value: Any, steps: dict[str, Any] | None = None) -> Any:
    return parse_template(value).render(
        RenderContext(ROW, {"QUO_FROM": "+15550001111"}, steps or {})
    )


def test_whole_value_keeps_json_type() -> None:
    assert render("/Age") == 36
    assert render("/Tags") == ["a", "b"]
    assert render("/First Name") == "Ada"


def test_inline_reference_is_text() -> None:
    assert render("Hi {/First Name}, {/Age} {/Tags}") == 'Hi Ada, 36 ["a","b"]'


def test_missing_and_null() -> None:
    assert render("/Missing") is None
    assert render("/Nothing") is None
    assert render("[{/Missing}]") == "[]"


def test_fallbacks() -> None:
    assert render("Hi {/Empty ?? there}!") == "Hi there!"
    assert render("Hi {/Missing ?? there}!") == "Hi there!"
    assert render("/Nothing ?? none") == "none"
    assert render("{/First Name ?? there}") == "Ada"


def test_literal_slash_and_brace() -> None:
    assert render("//First Name") == "/First Name"
    assert render("path {//x} here") == "path {/x} here"
    assert parse_template("//a") == Literal("/a")


def test_env() -> None:
    assert render("${QUO_FROM}") == "+15550001111"
    assert render("from ${QUO_FROM}!") == "from +15550001111!"
    with pytest.raises(ConfigError) as info:
        render("${NOPE}")
    assert info.value.variable == "NOPE"
    assert "NOPE" in str(info.value)


def test_step_reference() -> None:
    steps = {"contact": {"data": {"id": "CT1"}}}
    assert render("/@contact.data.id", steps) == "CT1"
    assert render("id={/@contact.data.id}", steps) == "id=CT1"
    assert render("/@contact", steps) == {"data": {"id": "CT1"}}
    assert render("/@missing.x ?? none", steps) == "none"


def test_structure_is_parsed_once() -> None:
    t = parse_template({"to": ["/Phone"], "content": "Hi {/First Name}", "n": 3})
    items = dict(t.items)  # type: ignore[union-attr]
    assert items["to"].items == (ColumnRef("Phone"),)  # type: ignore[union-attr]
    assert items["content"] == Text(("Hi ", ColumnRef("First Name")))
    assert items["n"] == Literal(3)
    assert parse_template("${A}") == EnvRef("A")
    assert isinstance(parse_template("/@s.a"), StepRef)


def test_malformed_reference() -> None:
    with pytest.raises(ValueError):
        parse_template("{/}")
    with pytest.raises(ValueError):
        parse_template("/@.x")
