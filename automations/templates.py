"""Templates: action parameters with Clay-style ``/Column`` references, parsed once.

The language (documented for recipe authors in ``docs/recipes.md`` and the JSON Schema):

- ``/Column Name`` as a whole string value: the column's value, JSON type kept.
- ``{/Column Name}`` inside a longer string: the value as text.
- ``/Column ?? fallback`` and ``{/Column ?? fallback}``: ``fallback`` (text) when the column is
  missing, null or empty.
- ``/@step.path`` and ``{/@step.path}``: a JMESPath ``path`` into the response body of an earlier
  step of the same run whose ``id`` is ``step`` (``/@contact.data.id``).
- ``${NAME}``: an environment variable, whole or inside text. Its value is a secret: the
  audit and previews show ``${NAME}``, never the value.
- ``//text``: the literal ``/text``; ``{//text}`` the literal ``{/text}``.
- A missing or null column renders as null (whole value) or empty text (inside a string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from automations.conditions import EVALUATION_ERRORS, Condition, compile_expression
from automations.errors import ConfigError

__all__ = [
    "ColumnRef",
    "EnvRef",
    "ListTemplate",
    "Literal",
    "MapTemplate",
    "RenderContext",
    "StepRef",
    "Template",
    "Text",
    "UrlText",
    "iter_refs",
    "parse_template",
    "to_text",
]

_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INLINE = re.compile(r"\{(//[^{}]*|/[^{}/][^{}]*|/)\}|\$\{(" + _ENV_NAME + r")\}")
_STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_:-]*")
_WHOLE_ENV = re.compile(r"\$\{(" + _ENV_NAME + r")\}\Z")


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a template can see: the row, the environment, earlier steps' response bodies."""

    row: Mapping[str, Any]
    env: Mapping[str, str]
    steps: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any

    def render(self, ctx: RenderContext) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """``/Column`` (whole value) or ``{/Column}`` (inside text)."""

    column: str
    fallback: str | None = None

    def render(self, ctx: RenderContext) -> Any:
        value = ctx.row.get(self.column)
        if self.fallback is not None and (value is None or value == ""):
            return self.fallback
        return value


@dataclass(frozen=True, slots=True)
class StepRef:
    """``/@step.path``: a value from an earlier step's response."""

    step: str
    path: Condition | None
    fallback: str | None = None

    def render(self, ctx: RenderContext) -> Any:
        body = ctx.steps.get(self.step)
        try:
            value = body if self.path is None or body is None else self.path.search(body)
        except EVALUATION_ERRORS:  # a response of another shape than expected: no value
            value = None
        if self.fallback is not None and (value is None or value == ""):
            return self.fallback
        return value


@dataclass(frozen=True, slots=True)
class EnvRef:
    name: str

    def render(self, ctx: RenderContext) -> Any:
        try:
            return ctx.env[self.name]
        except KeyError:
            raise ConfigError(
                f"environment variable {self.name} is not set; set it before running this recipe",
                variable=self.name,
            ) from None


@dataclass(frozen=True, slots=True)
class Text:
    """A string with ``{/Column}`` / ``${NAME}`` parts."""

    parts: tuple[str | ColumnRef | StepRef | EnvRef, ...]

    def render(self, ctx: RenderContext) -> str:
        # a list, not a generator: join builds one from a generator anyway
        return "".join([p if isinstance(p, str) else to_text(p.render(ctx)) for p in self.parts])


@dataclass(frozen=True, slots=True)
class UrlText(Text):
    """A URL with ``{/Column}`` parts: each value read from the row or a step is
    percent-encoded (``a+b&c@x.com`` -> ``a%2Bb%26c%40x.com``), so it stays one path segment or
    one query value. The written parts and ``${NAME}`` values (a base URL) are kept as they are."""

    def render(self, ctx: RenderContext) -> str:
        return "".join(
            [
                p
                if isinstance(p, str)
                else p.render(ctx)
                if isinstance(p, EnvRef)
                else quote(to_text(p.render(ctx)), safe="")
                for p in self.parts
            ]
        )


@dataclass(frozen=True, slots=True)
class MapTemplate:
    items: tuple[tuple[str, Template], ...]

    def render(self, ctx: RenderContext) -> dict[str, Any]:
        return {k: v.render(ctx) for k, v in self.items}


@dataclass(frozen=True, slots=True)
class ListTemplate:
    items: tuple[Template, ...]

    def render(self, ctx: RenderContext) -> list[Any]:
        return [v.render(ctx) for v in self.items]


Template = Literal | ColumnRef | StepRef | EnvRef | Text | UrlText | MapTemplate | ListTemplate
Ref = ColumnRef | StepRef | EnvRef


def to_text(value: Any) -> str:
    """A value as it appears inside text: strings as is, null as empty, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _parse_ref(body: str) -> ColumnRef | StepRef:
    """``body`` is what follows the ``/``: ``First Name``, ``First Name ?? there``, ``@s.path``.

    Raises ``ValueError`` (with a message for the author) on a malformed step reference.
    """
    fallback: str | None = None
    if "??" in body:
        body, _, fb = body.partition("??")
        fallback = fb.strip()
    name = body.strip()
    if name.startswith("@"):
        # the step id ends where its path begins: ``.field`` or ``[0]`` (a list response)
        m = _STEP_ID.match(name, 1)
        step = m.group(0) if m else ""
        path = name[1 + len(step) :].removeprefix(".")
        if not step:
            raise ValueError("a step reference needs a step id: /@step_id.field")
        return StepRef(step, compile_expression(path) if path else None, fallback)
    return ColumnRef(name, fallback)


@lru_cache(maxsize=4096)
def _parse_string(s: str) -> Template:
    # cached: templates are immutable values, and recipes repeat the same strings (/Email, ...)
    if s.startswith("//"):
        return Literal(s[1:])
    if s.startswith("/") and len(s) > 1:
        return _parse_ref(s[1:])
    m = _WHOLE_ENV.match(s)
    if m:
        return EnvRef(m.group(1))
    if "{" not in s and "${" not in s:
        return Literal(s)
    parts: list[str | ColumnRef | StepRef | EnvRef] = []
    pos = 0
    for m in _INLINE.finditer(s):
        if m.start() > pos:
            parts.append(s[pos : m.start()])
        ref, env = m.group(1), m.group(2)
        if env is not None:
            parts.append(EnvRef(env))
        elif ref.startswith("//"):
            parts.append("{" + ref[1:] + "}")
        elif ref == "/":
            raise ValueError("empty reference {/}: write {/Column Name}")
        else:
            parts.append(_parse_ref(ref[1:]))
        pos = m.end()
    if pos < len(s):
        parts.append(s[pos:])
    merged: list[str | ColumnRef | StepRef | EnvRef] = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    if len(merged) == 1 and isinstance(merged[0], str):
        return Literal(merged[0])
    return Text(tuple(merged))


def parse_template(
    value: Any,
    on_error: Callable[[tuple[str | int, ...], str], None] | None = None,
    _path: tuple[str | int, ...] = (),
) -> Template:
    """Parse a YAML value into a template. Malformed references are reported through
    ``on_error(path, message)`` (and render as literal text); without ``on_error`` they raise
    ``ValueError``."""
    if isinstance(value, str):
        try:
            return _parse_string(value)
        except Exception as exc:  # jmespath errors and ValueError: both are the author's
            if on_error is None:
                raise ValueError(str(exc)) from exc
            on_error(_path, str(exc))
            return Literal(value)
    if isinstance(value, dict):
        return MapTemplate(
            tuple((k, parse_template(v, on_error, (*_path, k))) for k, v in value.items())
        )
    if isinstance(value, list):
        return ListTemplate(
            tuple(parse_template(v, on_error, (*_path, i)) for i, v in enumerate(value))
        )
    return Literal(value)


def iter_refs(
    t: Template, _path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Ref]]:
    """Every reference in ``t`` with the path of the value holding it."""
    found: list[tuple[tuple[str | int, ...], Ref]] = []
    _collect_refs(t, _path, found)
    return iter(found)


def _collect_refs(
    t: Template, path: tuple[str | int, ...], found: list[tuple[tuple[str | int, ...], Ref]]
) -> None:
    # a list, not nested generators: the compiler walks every action's template with it
    if isinstance(t, ColumnRef | StepRef | EnvRef):
        found.append((path, t))
    elif isinstance(t, Text):
        found.extend((path, p) for p in t.parts if not isinstance(p, str))
    elif isinstance(t, MapTemplate):
        for k, v in t.items:
            _collect_refs(v, (*path, k), found)
    elif isinstance(t, ListTemplate):
        for i, v in enumerate(t.items):
            _collect_refs(v, (*path, i), found)
