"""Structural validation against ``schemas/recipe.schema.json``, with positions.

Valid recipes take a fast path (a fastjsonschema-compiled validator); only a recipe that fails
it is walked with ``jsonschema`` to turn every error into a diagnostic at the offending key or
value, with a did-you-mean where a name was mistyped.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import fastjsonschema

from automations.diagnostics import Diagnostic, Severity
from automations.recipes.yamlsource import Path_, SourceDoc

if TYPE_CHECKING:
    import jsonschema

__all__ = ["check_structure", "check_test_file", "did_you_mean", "recipe_schema"]

_TYPE_NAMES = {
    "string": "text",
    "object": "a mapping (key: value)",
    "array": "a list",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@cache
def recipe_schema() -> dict[str, Any]:
    """The recipe JSON Schema (draft-07), as shipped with the package."""
    text = resources.files("automations").joinpath("data/recipe.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


#: Where an "exactly one of these keys" rule applies: the path to the value (``None`` standing
#: for every item of a list) and the keys.
_OneOfKeys = tuple[tuple[str | None, ...], list[str]]


def _inline_refs(
    node: Any, definitions: Mapping[str, Any], seen: frozenset[str] = frozenset()
) -> Any:
    """``node`` with each ``{"$ref": "#/definitions/x"}`` replaced by the definition (draft-07
    ignores a ``$ref``'s siblings). The compiled validator calls a function per ``$ref``, and
    formats a name for it with ``locals()`` each time, valid value or not."""
    if isinstance(node, list):
        return [_inline_refs(v, definitions, seen) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        name = ref.removeprefix("#/definitions/")
        if name in definitions and name not in seen:  # a recursive definition stays a $ref
            return _inline_refs(definitions[name], definitions, seen | {name})
    return {k: _inline_refs(v, definitions, seen) for k, v in node.items()}


def _split_one_of_keys(
    schema: dict[str, Any], at: tuple[str | None, ...] = ()
) -> tuple[dict[str, Any], list[_OneOfKeys]]:
    """``schema`` without its ``oneOf: [{required: [a]}, {required: [b]}, ...]`` rules, and where
    they were.

    The compiled validator tries each ``oneOf`` branch under ``try``/``except``: for a valid recipe,
    one raised exception per action kind not used, which made up most of the fast path's cost.
    Only the rules reached through ``properties`` and ``items`` are taken out (their place in the
    recipe is known); any other stays in the schema.
    """
    out = dict(schema)
    sites: list[_OneOfKeys] = []
    alternatives = _required_alternatives(schema)
    if alternatives is not None:
        del out["oneOf"]
        sites.append((at, alternatives))
    props = schema.get("properties")
    if isinstance(props, dict):
        out["properties"] = {}
        for key, sub in props.items():
            if isinstance(sub, dict):
                sub, more = _split_one_of_keys(sub, (*at, key))
                sites.extend(more)
            out["properties"][key] = sub
    items = schema.get("items")
    if isinstance(items, dict):
        out["items"], more = _split_one_of_keys(items, (*at, None))
        sites.extend(more)
    return out, sites


def _values_at(value: Any, at: tuple[str | None, ...]) -> Iterator[Any]:
    if not at:
        yield value
    elif at[0] is None:
        if isinstance(value, list):
            for item in value:
                yield from _values_at(item, at[1:])
    elif isinstance(value, dict) and at[0] in value:
        yield from _values_at(value[at[0]], at[1:])


@cache
def _fast_validator() -> Callable[[Any], bool]:
    """Whether a recipe is valid, cheaply: a fastjsonschema-compiled validator of the schema
    (its ``$ref``s inlined) without its "exactly one of these keys" rules, checked here instead.
    """
    schema = recipe_schema()
    inlined = _inline_refs(schema, schema.get("definitions", {}))
    loose, sites = _split_one_of_keys(inlined)
    # only valid or not is needed here: short messages make a third of the code to compile
    compiled = fastjsonschema.compile(loose, detailed_exceptions=False)

    def valid(value: Any) -> bool:
        try:
            compiled(value)
        except fastjsonschema.JsonSchemaException:
            return False
        for at, keys in sites:
            for node in _values_at(value, at):
                # ``required`` holds for a non-mapping, so then every branch matches
                present = sum(k in node for k in keys) if isinstance(node, dict) else len(keys)
                if present != 1:
                    return False
        return True

    return valid


@cache
def _full_validator() -> jsonschema.Draft7Validator:
    import jsonschema  # only for a recipe with mistakes: keeps lint's start quick

    return jsonschema.Draft7Validator(recipe_schema())


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` when a choice is close to ``word``, else empty."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _where(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "the recipe"


def _required_alternatives(schema: Mapping[str, Any]) -> list[str] | None:
    """For ``oneOf: [{required: [a]}, {required: [b]}]``: ``[a, b]``."""
    branches = schema.get("oneOf")
    if not isinstance(branches, list):
        return None
    names: list[str] = []
    for b in branches:
        req = b.get("required") if isinstance(b, dict) else None
        if not (isinstance(req, list) and len(req) == 1 and set(b) == {"required"}):
            return None
        names.append(req[0])
    return names


class _Mapper:
    def __init__(self, doc: SourceDoc) -> None:
        self.doc = doc
        self.out: list[Diagnostic] = []
        self.seen: set[tuple[int, int, str, str]] = set()
        self.unknown_at: set[Path_] = set()
        self.skip_values = set(doc.plus_numbers)

    def add(self, pos: tuple[int, int], code: str, message: str) -> None:
        key = (pos[0], pos[1], code, message)
        if key not in self.seen:
            self.seen.add(key)
            self.out.append(
                Diagnostic(self.doc.file, pos[0], pos[1], Severity.ERROR, code, message)
            )

    def error(self, err: jsonschema.ValidationError) -> None:
        path: Path_ = tuple(err.absolute_path)
        # typed loosely on purpose: the stubs say "... | Unset", but a reported error has them all
        v: Any = err.validator
        schema: Any = err.schema
        inst: Any = err.instance
        want: Any = err.validator_value
        pos = self.doc.positions
        if v == "additionalProperties" and isinstance(inst, dict):
            allowed = list(schema.get("properties", {}))
            for key in inst:
                if key not in allowed:
                    self.unknown_at.add(path)
                    hint = did_you_mean(key, allowed) or (
                        f"; expected one of: {', '.join(allowed)}" if allowed else ""
                    )
                    self.add(
                        pos.of_key((*path, key)),
                        "SCH001",
                        f'unknown key "{key}" in {_where(path)}{hint}',
                    )
        elif v == "required" and isinstance(inst, dict):
            for key in want:
                if key not in inst:
                    self.add(
                        pos.of_key(path),
                        "SCH002",
                        f'{_where(path)} is missing the required key "{key}"',
                    )
        elif v == "oneOf" and (alts := _required_alternatives(schema)) is not None:
            present = [a for a in alts if isinstance(inst, dict) and a in inst]
            if not present and path in self.unknown_at:
                return  # the unknown (probably mistyped) key was reported already
            if not present:
                msg = f"{_where(path)} needs one of: {', '.join(alts)}"
            else:
                msg = (
                    f"{_where(path)} takes only one of {', '.join(alts)} "
                    f"(found {', '.join(present)})"
                )
            self.add(pos.of_key(path), "SCH005", msg)
        elif v == "type":
            if path in self.skip_values:
                return  # reported as YAML004 ("quote it")
            wants = [want] if isinstance(want, str) else list(want)
            names = " or ".join(_TYPE_NAMES.get(w, w) for w in wants)
            self.add(
                pos.of_value(path),
                "SCH003",
                f"{_where(path)} must be {names}, not {_describe(inst)}",
            )
        elif v == "enum":
            choices = [str(c) for c in want]
            hint = did_you_mean(str(inst), choices)
            self.add(
                pos.of_value(path),
                "SCH004",
                f"{_where(path)}: {json.dumps(inst)} is not one of {', '.join(choices)}{hint}",
            )
        else:
            self.add(pos.of_value(path), "SCH004", f"{_where(path)}: {_rephrase(err)}")


def _rephrase(err: jsonschema.ValidationError) -> str:
    v: Any = err.validator
    inst: Any = err.instance
    want: Any = err.validator_value
    schema: Any = err.schema
    desc = str(schema.get("description", ""))
    first_sentence = desc.split(". ")[0].rstrip(".")
    if v == "pattern":
        return f"{json.dumps(inst)} is not valid here" + (
            f" ({first_sentence})" if first_sentence else ""
        )
    if v in ("minItems", "maxItems"):
        bound = "at least" if v == "minItems" else "at most"
        return f"expected {bound} {want} item(s), got {len(inst)}"
    if v == "minLength":
        return "must not be empty"
    if v == "minProperties":
        return "must not be empty"
    return err.message


def check_structure(doc: SourceDoc) -> list[Diagnostic]:
    """Diagnostics for every schema violation in ``doc.value`` (empty when valid)."""
    value = doc.value
    if not isinstance(value, dict):
        what = "empty" if value is None else _describe(value)
        return [
            Diagnostic(
                doc.file,
                1,
                1,
                Severity.ERROR,
                "SCH003",
                f"a recipe must be a mapping with name, trigger and actions; this file is {what}",
            )
        ]
    if _fast_validator()(value):
        return []
    mapper = _Mapper(doc)
    errors = sorted(
        _full_validator().iter_errors(value),
        # additionalProperties first, so a mistyped key explains the oneOf error after it
        key=lambda e: (len(e.absolute_path), e.validator != "additionalProperties"),
    )
    for err in errors:
        mapper.error(err)
    return sorted(mapper.out, key=lambda d: (d.line, d.column))


@cache
def _test_file_validators() -> tuple[jsonschema.Draft7Validator, jsonschema.Draft7Validator]:
    """Validators of a test file: a mapping with ``tests:``, or the list alone."""
    import jsonschema

    tests = recipe_schema()["properties"]["tests"]
    wrapped = {
        "type": "object",
        "additionalProperties": False,
        "required": ["tests"],
        "properties": {"tests": tests},
    }
    return jsonschema.Draft7Validator(wrapped), jsonschema.Draft7Validator(tests)


def check_test_file(doc: SourceDoc) -> list[Diagnostic]:
    """Diagnostics for every schema violation in a ``NAME.test.yaml`` (empty when valid): the
    same rules, positions and did-you-mean as a recipe's own ``tests:``."""
    if not isinstance(doc.value, dict | list):
        what = "empty" if doc.value is None else _describe(doc.value)
        return [
            Diagnostic(
                doc.file,
                1,
                1,
                Severity.ERROR,
                "SCH003",
                f"a test file must be a mapping with tests: (a list of tests); this file is {what}",
            )
        ]
    wrapped, bare = _test_file_validators()
    mapper = _Mapper(doc)
    validator = wrapped if isinstance(doc.value, dict) else bare
    errors = sorted(
        validator.iter_errors(doc.value),
        key=lambda e: (len(e.absolute_path), e.validator != "additionalProperties"),
    )
    for err in errors:
        mapper.error(err)
    return sorted(mapper.out, key=lambda d: (d.line, d.column))
