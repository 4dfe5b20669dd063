"""The recipe JSON Schema: draft-07, documented everywhere, and the same file the package ships."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from automations.recipes.structure import recipe_schema

REPO = Path(__file__).resolve().parents[2]


def _undocumented(node: Any, path: str = "") -> list[str]:
    out: list[str] = []
    if not isinstance(node, dict):
        return out
    for name, sub in node.get("properties", {}).items():
        if isinstance(sub, dict) and "description" not in sub and "$ref" not in sub:
            out.append(f"{path}.{name}")
        out += _undocumented(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        out += _undocumented(node.get(key), f"{path}[]")
    for name, sub in node.get("definitions", {}).items():
        out += _undocumented(sub, f"#{name}")
    return out


def test_schema_is_draft7_and_every_property_is_documented() -> None:
    schema = json.loads((REPO / "schemas" / "recipe.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert _undocumented(schema) == []


def test_the_package_ships_the_schema_file() -> None:
    assert recipe_schema() == json.loads((REPO / "schemas" / "recipe.schema.json").read_text())


def test_every_example_recipe_points_editors_at_the_schema() -> None:
    for f in sorted((REPO / "recipes").glob("*.yaml")):
        first = f.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/recipe.schema.json", f.name
