"""The compiler's fast paths and caches give exactly the answers of the slow, plain ways."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from automations import vendor
from automations.recipes.actions import _bare_types, _vendor_accepts
from automations.recipes.compiler import LoadResult, display_name
from automations.recipes.structure import _fast_validator, recipe_schema
from automations.recipes.tables import read_columns
from automations.recipes.yamlsource import _Loader
from tests.recipes.conftest import codes
from tests.recipes.test_loader import GOOD

ACTION_ITEMS: list[Any] = [
    {"quo.send_sms": {"from": "${QUO_FROM}", "to": ["/Phone"], "content": "Hi"}},
    {"loops.send_event": {"email": "/Email", "eventName": "x"}},
    {"id": "a", "quo.send_sms": {"from": "x", "to": ["y"], "content": "z"}, "loops.send_event": {}},
    {"id": "b"},
    {"http.request": {"url": "https://h/", "method": "GET"}},
    "not a mapping",
    {"quo.create_contact": {"defaultFields": {"firstName": "/First Name"}}},
]
TRIGGERS = [
    {"table": {"path": "leads.csv", "key": "Email"}},
    {"webhook": {"path": "/h", "verify": {"scheme": "none"}}},
    {"schedule": {"every": "5m"}},
    {"schedule": {"cron": "0 9 * * *", "every": "5m"}},
    {"schedule": {"timezone": "UTC"}},
    {"table": {"path": "leads.csv", "key": "Email"}, "schedule": {"every": "5m"}},
    {},
    "table",
]
recipes = st.fixed_dictionaries(
    {"name": st.sampled_from(["ok", "not ok!"])},
    optional={
        "trigger": st.sampled_from(TRIGGERS),
        "actions": st.lists(st.sampled_from(ACTION_ITEMS), max_size=3) | st.just("x"),
        "only_run_if": st.sampled_from(["Phone != null", "", 5]),
    },
)


VALID_ACTION = {"loops.send_event": {"email": "/Email", "eventName": "x"}}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(recipes)
@example({"name": "ok", "trigger": TRIGGERS[0], "actions": [VALID_ACTION]})  # valid
@example({"name": "ok", "trigger": TRIGGERS[5], "actions": [VALID_ACTION]})  # two trigger kinds
@example({"name": "ok", "trigger": TRIGGERS[3], "actions": [VALID_ACTION]})  # cron and every
@example({"name": "ok", "trigger": TRIGGERS[4], "actions": [VALID_ACTION]})  # neither
@example({"name": "ok", "trigger": TRIGGERS[0], "actions": [{**VALID_ACTION, **ACTION_ITEMS[0]}]})
@example({"name": "ok", "trigger": TRIGGERS[0], "actions": [VALID_ACTION, ACTION_ITEMS[3]]})
def test_fast_structure_check_agrees_with_jsonschema(recipe: dict[str, Any]) -> None:
    expected = jsonschema.Draft7Validator(recipe_schema()).is_valid(recipe)
    assert _fast_validator()(recipe) is expected


vendor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(["", "x", "+15555550100", "PN1", "US1", "done", "\x00dynamic\x00"]),
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(["name", "value", "firstName", "key"]), inner, max_size=3)
    ),
    max_leaves=6,
)
vendor_bodies = st.dictionaries(
    st.sampled_from(
        [
            "email",
            "userId",
            "eventName",
            "eventProperties",
            "firstName",
            "subscribed",
            "plan",
            "defaultFields",
            "customFields",
            "source",
            "externalId",
            "content",
            "from",
            "to",
        ]
    ),
    vendor_values,
    max_size=5,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(vendor.schema_kinds()), vendor_bodies)
def test_fast_vendor_check_agrees_with_jsonschema(kind: str, body: dict[str, Any]) -> None:
    expected = jsonschema.Draft7Validator(vendor.schema_for(kind)).is_valid(body)
    try:
        _vendor_accepts(kind)(body)
        accepted = True
    except Exception:
        accepted = False
    # fastjsonschema also checks formats (``uri``), which jsonschema skips: stricter, never looser
    assert accepted <= expected


def test_bare_types_keep_the_meaning() -> None:
    schema = {
        "properties": {
            "a": {"anyOf": [{"type": "string", "description": "d"}, {"type": "null"}]},
            "b": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
            "c": {"oneOf": [{"type": "string"}, {"type": "string", "pattern": "^x"}]},
            "d": {"enum": [{"anyOf": [{"type": "string"}]}]},
        },
        "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "boolean"}]},
    }
    assert _bare_types(schema) == {
        "properties": {
            "a": {"type": ["string", "null"]},
            "b": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
            "c": {"oneOf": [{"type": "string"}, {"type": "string", "pattern": "^x"}]},
            "d": {"enum": [{"anyOf": [{"type": "string"}]}]},
        },
        "additionalProperties": {"type": ["string", "boolean"]},
    }


def test_vendor_check_does_not_fill_in_defaults() -> None:
    body: dict[str, Any] = {"defaultFields": {"firstName": "Ada"}}
    _vendor_accepts("quo.create_contact")(body)
    assert body == {"defaultFields": {"firstName": "Ada"}}


def test_vendor_findings_are_the_same_when_cached(
    compile_recipe: Callable[..., LoadResult],
) -> None:
    text = GOOD.replace("${QUO_FROM}", '"555"')
    first, second = compile_recipe(text), compile_recipe(text)
    assert codes(first.diagnostics) == codes(second.diagnostics) == [("VND001", 7, 13)]
    assert first.diagnostics == second.diagnostics


@pytest.mark.parametrize(
    "text",
    [
        "a: [1, +1, 0x1f, 1_000, .inf, ~, null, yes, No, on, 2001-12-14, '1', \"x\", 1e3, 0o17]\n",
        "!!str k: v\n? [a]\n: 1\n<<: {a: 1}\nb: ! 7\nc: !!int '3'\n",
    ],
)
def test_loader_tags_as_pyyaml_does(text: str) -> None:
    def tags(node: yaml.Node) -> list[Any]:
        if isinstance(node, yaml.ScalarNode):
            return [(node.tag, node.value)]
        if isinstance(node, yaml.SequenceNode):
            return [node.tag, *(t for child in node.value for t in tags(child))]
        pairs = node.value
        return [node.tag, *(t for k, v in pairs for t in [*tags(k), *tags(v)])]

    ours = yaml.compose(text, Loader=_Loader)
    theirs = yaml.compose(text, Loader=yaml.SafeLoader)
    assert ours is not None and theirs is not None
    assert tags(ours) == tags(theirs)


def test_table_columns_are_read_again_when_the_file_changes(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("Email,Phone\na@b.c,1\n")
    assert read_columns(table) == (["Email", "Phone"], "header")
    names, _ = read_columns(table)
    assert names is not None
    names.append("mutated by a caller")
    assert read_columns(table) == (["Email", "Phone"], "header")
    stat = table.stat()
    table.write_text("Email,Phone,Company\na@b.c,1,X\n")
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, other content
    assert read_columns(table) == (["Email", "Phone", "Company"], "header")
    table.unlink()
    assert read_columns(table) == (None, "the file does not exist yet")


def test_display_name_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    recipe = tmp_path / "sub" / "r.yaml"
    recipe.write_text("name: r\n")
    monkeypatch.chdir(tmp_path)
    assert display_name(recipe) == "sub/r.yaml"
    assert display_name(Path("sub/../sub/r.yaml")) == "sub/r.yaml"
    assert display_name(tmp_path) == "."
    monkeypatch.chdir(tmp_path / "sub")
    assert display_name(recipe) == "r.yaml"
    outside = tmp_path.parent / "elsewhere.yaml"
    assert display_name(outside) == str(outside)
