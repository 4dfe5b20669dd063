"""The vendors' own request schemas, checked before anything is sent.

``automations/data/vendor_schemas.json`` holds the request-body schema of each endpoint the engine
calls, extracted from the published OpenAPI specs by ``tools/extract_vendor_schemas.py`` (``$ref``
resolved, one self-contained draft-07 schema per action kind, with the spec's source and commit).

Valid bodies, the common case, cost one call to a ``fastjsonschema``-compiled function. Only an
invalid body goes through ``jsonschema`` to say which field is wrong and why.

In previews and dry runs an unset variable renders as the placeholder ``${NAME}``
(``execution.render.PreviewEnv``). A value that is exactly a placeholder stands for a value not
known yet: problems with it are not reported, and the adapters leave it as it is.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import fastjsonschema

if TYPE_CHECKING:  # imported when a body is invalid: valid bodies never need it
    import jsonschema

from automations.errors import RenderError

__all__ = [
    "EndpointShape",
    "endpoint_shape",
    "format_path",
    "is_placeholder",
    "require_mapping",
    "require_valid",
    "schema_for",
    "schema_kinds",
    "sources",
    "validate_body",
]

_MAX_SHOWN = 60
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def is_placeholder(value: Any) -> bool:
    """Whether ``value`` is a preview's ``${NAME}`` stand-in for an unset variable."""
    return isinstance(value, str) and _PLACEHOLDER.fullmatch(value) is not None


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("automations").joinpath("data/vendor_schemas.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def schema_kinds() -> tuple[str, ...]:
    """The action kinds that have a vendor schema."""
    return tuple(_data()["schemas"])


def schema_for(kind: str) -> dict[str, Any]:
    """The request-body JSON Schema of ``kind`` (``"quo.send_sms"``); ``KeyError`` if none."""
    schema: dict[str, Any] = _data()["schemas"][kind]["schema"]
    return schema


@dataclass(frozen=True, slots=True)
class EndpointShape:
    """Where an action kind's request goes, from the vendor's spec: method, path template, and
    which of the action's parameters go in the path and the query (the rest is the body)."""

    method: str
    path: str
    path_parameters: tuple[str, ...]
    query_parameters: tuple[str, ...]


@functools.cache
def endpoint_shape(kind: str) -> EndpointShape:
    """The ``EndpointShape`` of ``kind``; ``KeyError`` if the packaged data has none."""
    entry = _data()["schemas"][kind]
    return EndpointShape(
        entry["method"],
        entry["path"],
        tuple(entry.get("path_parameters", ())),
        tuple(entry.get("query_parameters", ())),
    )


def sources() -> dict[str, Any]:
    """Where each spec came from: ``{file: {repository, commit, origin}}``."""
    result: dict[str, Any] = _data()["sources"]
    return result


@functools.cache
def _fast_validator(kind: str) -> Callable[[Any], Any]:
    # use_default=False: validation must never change the body (fastjsonschema would otherwise
    # fill in schema defaults, e.g. Quo's ``"source": "public-api"``)
    return fastjsonschema.compile(schema_for(kind), use_default=False)


@functools.cache
def _full_validator(kind: str) -> jsonschema.Draft7Validator:
    import jsonschema

    return jsonschema.Draft7Validator(schema_for(kind))


def validate_body(kind: str, body: Any) -> list[str]:
    """Problems with ``body`` as a request for ``kind``, one readable line each; empty when valid.

    Each line starts with the field's path: ``to[0]: '555' does not match '^\\+[1-9]\\d{1,14}$'``.
    """
    fast = _fast_validator(kind)
    try:
        fast(body)
    except fastjsonschema.JsonSchemaValueException as exc:
        errors = _sorted(_full_validator(kind).iter_errors(body))
        known = [e for e in errors if not is_placeholder(e.instance)]
        problems = list(dict.fromkeys(_describe(e) for e in known))  # allOf can repeat one
        if problems or errors:
            return problems
        # jsonschema skips formats it has no checker for (``uri``); fastjsonschema's own words
        # are better than silence then.
        message = str(exc.message).removeprefix(f"{exc.name} ")
        return [f"{format_path(exc.path[1:])}: {message}"]
    return []


def require_mapping(kind: str, body: Any) -> Mapping[str, Any]:
    """``body`` if it is a mapping of fields, else ``RenderError`` (nothing is sent)."""
    if not isinstance(body, Mapping):
        raise RenderError(f"{kind} takes a mapping of fields, not {type(body).__name__}")
    return body


def require_valid(kind: str, body: Any) -> None:
    """Raise ``RenderError`` naming the first wrong field when ``body`` is not a valid ``kind``."""
    problems = validate_body(kind, body)
    if problems:
        first = problems[0]
        path, _, message = first.partition(": ")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        vendor = kind.partition(".")[0].capitalize()
        raise RenderError(
            f"{message} ({vendor}'s API schema){more}",
            path="" if path == "(body)" else path,
        )


def format_path(parts: Iterable[str | int]) -> str:
    """``["to", 0]`` -> ``to[0]``; the empty path is ``(body)``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(body)"


def _sorted(errors: Iterable[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    return sorted(errors, key=lambda e: (format_path(e.absolute_path), e.validator))


def _describe(error: jsonschema.ValidationError) -> str:
    reason = _reason(error)
    if reason is None:  # an anyOf / oneOf with no simpler summary: its most relevant branch
        from jsonschema.exceptions import best_match

        best = best_match(error.context or [])
        if best is not None:
            return _describe(best)
        reason = error.message[:200]
    return f"{format_path(error.absolute_path)}: {reason}"


def _reason(error: jsonschema.ValidationError) -> str | None:
    # Typed loosely on purpose: the stubs say "Any | Unset", but a reported error has both.
    kind: Any = error.validator
    expected: Any = error.validator_value
    instance: Any = error.instance
    if kind == "required":
        missing = [name for name in expected if name not in (instance or {})]
        return f"missing required field {', '.join(repr(m) for m in missing)}"
    if kind in ("anyOf", "oneOf") and all(
        isinstance(s, dict) and set(s) == {"required"} for s in expected
    ):
        names = " or ".join(repr(n) for s in expected for n in s["required"])
        return f"needs {names}"
    if kind in ("anyOf", "oneOf"):
        context = error.context or []
        patterns = [e.validator_value for e in context if e.validator == "pattern"]
        if patterns and len(patterns) == len({id(e.schema) for e in context}):
            return f"{_shown(instance)} does not match {' or '.join(map(str, patterns))}"
        types = [s.get("type") for s in expected if isinstance(s, dict) and "type" in s]
        if len(types) == len(expected) and all(e.validator == "type" for e in context):
            return f"{_shown(instance)} is not {_either(types)}"
        return None
    if kind == "type":
        return f"{_shown(instance)} is not {_either([expected])}"
    if kind == "pattern":
        return f"{_shown(instance)} does not match the pattern {expected}"
    if kind == "maxLength":
        return f"is {len(instance)} characters long; the limit is {expected}"
    if kind == "minLength":
        return "is empty" if expected == 1 else f"is shorter than {expected} characters"
    if kind == "maxItems":
        return f"has {len(instance)} items; at most {expected} allowed"
    if kind == "minItems":
        return f"needs at least {expected} item{'s' if expected != 1 else ''}"
    if kind in ("enum", "const"):
        allowed = expected if kind == "enum" else [expected]
        return f"{_shown(instance)} is not one of {', '.join(map(repr, allowed))}"
    return str(error.message)[:200]


def _either(types: list[Any]) -> str:
    names = [
        "null" if t == "null" else f"a{'n' if str(t)[0] in 'aeiou' else ''} {t}"
        for t in dict.fromkeys(map(str, types))
    ]
    return " or ".join(names)


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"
