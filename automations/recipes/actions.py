"""Compile a recipe's ``actions:``: templates, references, vendor bodies and pasted secrets."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import fastjsonschema

from automations.actions.loops import CLEAR, loops_length
from automations.actions.quo import RESERVED_SOURCES_TEXT, reserved_source
from automations.conditions import STEP_FIELD, Condition, quote_step_refs
from automations.diagnostics import Severity
from automations.model import Action
from automations.recipes.advice import check_action_text
from automations.recipes.context import CompileContext
from automations.recipes.structure import did_you_mean
from automations.recipes.triggers import KnownColumns, compile_expr
from automations.recipes.upsert import UPSERT, expand_upsert
from automations.recipes.yamlsource import Path_
from automations.templates import (
    ColumnRef,
    EnvRef,
    ListTemplate,
    Literal,
    MapTemplate,
    StepRef,
    Template,
    Text,
    UrlText,
    iter_refs,
    parse_template,
)

if TYPE_CHECKING:
    import jsonschema

__all__ = ["ACTION_KINDS", "compile_actions", "iter_strings"]

ACTION_KINDS = (
    "quo.create_contact",
    "quo.send_sms",
    "quo.find_contacts",
    "quo.update_contact",
    "quo.upsert_contact",
    "quo.get_call_summary",
    "quo.get_call_transcript",
    "quo.list_phone_numbers",
    "loops.update_contact",
    "loops.send_event",
    "loops.find_contact",
    "loops.send_transactional",
    "loops.delete_contact",
    "http.request",
)
_LOOPS_MAX = 500  # Loops caps body values at 500 characters (vendor README)
_DYNAMIC = "+15555550100"

_SECRET_PATTERNS = (
    (re.compile(r"whsec_[A-Za-z0-9+/=]{8,}"), "a whsec_ webhook secret"),
    (re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]{8,}"), "an API key"),
    (re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{16,}"), "a bearer token"),
    (
        re.compile(
            r"(?<![A-Za-z0-9_/.-])(?=[A-Za-z_-]*[0-9])(?=[0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}"
            r"(?![A-Za-z0-9_/.-])"
        ),
        "an API key",
    ),
)
#: No pattern above matches fewer characters (``whsec_`` and 8 more): shorter text is skipped.
_SECRET_MIN_LENGTH = 14
_ENV_CREDENTIAL = re.compile(r"(Bearer |Basic |Token )?\$\{[A-Za-z0-9_]+\}")
_SECRET_HEADERS = {"authorization", "x-api-key", "api-key", "apikey", "x-auth-token", "token"}

#: Vendor-schema rules that a value holding references still breaks (they look at its keys or
#: its length, which the recipe writes out).
_STATIC_VALIDATORS = ("required", "additionalProperties", "minItems", "maxItems")
#: A vendor-schema finding: the path inside the body and the message.
_Finding = tuple[Path_, str]


def iter_strings(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, str]]:
    """Every string in ``value`` (nested mappings and lists), with its path, depth first."""
    found: list[tuple[Path_, str]] = []
    _collect_strings(value, path, found)
    return iter(found)


def _collect_strings(value: Any, path: Path_, found: list[tuple[Path_, str]]) -> None:
    # a list, not nested generators: this runs over every action of every recipe
    if isinstance(value, str):
        found.append((path, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            _collect_strings(v, (*path, k), found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _collect_strings(v, (*path, i), found)


def _check_secrets(ctx: CompileContext, path: Path_, params: Any) -> None:
    for spath, text in iter_strings(params, path):
        if "${" in text and _ENV_CREDENTIAL.fullmatch(text):
            continue
        header = spath[-1] if len(spath) >= 2 and spath[-2] == "headers" else None
        what = None
        if len(text) >= _SECRET_MIN_LENGTH:
            for rx, label in _SECRET_PATTERNS:
                if rx.search(text):
                    what = label
                    break
        if (
            what is None
            and isinstance(header, str)
            and header.lower() in _SECRET_HEADERS
            and "${" not in text
            and len(text) >= 8
        ):
            what = "a credential"
        if what:
            ctx.report(
                spath,
                "SEC001",
                f"this looks like {what} pasted into the recipe; move it to an environment "
                "variable and write ${NAME} instead (recipes live in git)",
            )


@cache
def _vendor_schema(kind: str) -> dict[str, Any] | None:
    from automations import vendor  # the packaged vendor request schemas

    try:
        return vendor.schema_for(kind)
    except KeyError:
        return None


@cache
def _vendor_accepts(kind: str) -> Callable[[Any], object]:
    """``kind``'s vendor schema compiled by fastjsonschema: raises when a body is not valid.

    ``use_default=False``: the validator would otherwise write the schema's defaults into the
    body it checks. Short messages: only whether the body is valid matters here.
    """
    schema = _bare_types(_vendor_schema(kind))
    return fastjsonschema.compile(schema, use_default=False, detailed_exceptions=False)


#: A schema with only these keys accepts any value of its type (the rest describe the value).
_BARE_TYPE_KEYS = frozenset(
    {"type", "description", "title", "deprecated", "examples", "$comment", "default", "readOnly"}
)


def _bare_types(schema: Any) -> Any:
    """``schema`` with each ``anyOf``/``oneOf`` of bare types (``[{type: string}, {type: null}]``)
    written as a list of types, which accepts exactly the same values.

    The compiled validator tries such branches under ``try``/``except``, and Loops' "any other
    property is a string, a number or a boolean" made that a raised exception per branch per
    custom property: most of the fast check's cost for ``loops.update_contact``.
    """
    if isinstance(schema, list):
        return [_bare_types(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: v if k in ("enum", "const", "default", "examples") else _bare_types(v)
        for k, v in schema.items()
    }
    for keyword in ("anyOf", "oneOf"):
        branches = out.get(keyword)
        if "type" in out or not isinstance(branches, list):
            continue
        if not all(
            isinstance(b, dict) and isinstance(b.get("type"), str) and set(b) <= _BARE_TYPE_KEYS
            for b in branches
        ):
            continue
        types = [b["type"] for b in branches]
        # oneOf: exactly one branch, so the types must not overlap (an integer is a number)
        disjoint = len(set(types)) == len(types) and not {"integer", "number"} <= set(types)
        if keyword == "anyOf" or disjoint:
            del out[keyword]
            out["type"] = types
    return out


@cache
def _vendor_validator(kind: str) -> jsonschema.Draft7Validator:
    import jsonschema  # only needed when a probe fails the fast check: keeps lint's start quick

    schema = _vendor_schema(kind)
    assert schema is not None
    return jsonschema.Draft7Validator(schema)


@lru_cache(maxsize=1024)
def _vendor_errors(kind: str, body_json: str, dynamic: frozenset[Path_]) -> tuple[_Finding, ...]:
    """The vendor-schema errors of a probe body that its dynamic values do not explain.

    Cached by the probe's JSON text: recipes repeat the same bodies (a ``quo.send_sms`` from
    ``${QUO_FROM}`` to ``[/Phone]`` with a templated text probes the same every time), and a
    ``jsonschema`` walk is what makes a probe failing the fast check expensive.
    """
    out: list[_Finding] = []
    for err in _vendor_validator(kind).iter_errors(json.loads(body_json)):
        epath: Path_ = tuple(err.absolute_path)
        if err.validator in ("anyOf", "oneOf") and _touches(epath, dynamic):
            if not all(e.validator == "required" for e in err.context or ()):
                continue
        elif _under(epath, dynamic) or (
            err.validator not in _STATIC_VALIDATORS and _touches(epath, dynamic)
        ):
            continue
        out.append((epath, _vendor_message(kind, err)))
    return tuple(out)


def _probe(t: Template) -> Any:
    """``t`` rendered with every reference replaced by a marker, to validate static parts."""
    if isinstance(t, Literal):
        return t.value
    if isinstance(t, MapTemplate):
        return {k: _probe(v) for k, v in t.items}
    if isinstance(t, ListTemplate):
        return [_probe(v) for v in t.items]
    # A plausible value (non-empty text, an E.164 number, as the vendors' phone and text fields
    # want) lets a clean body pass the fast check without importing jsonschema; a body that
    # still fails is walked, and errors at dynamic paths are dropped either way.
    return _DYNAMIC


def _under(path: Path_, prefixes: frozenset[Path_]) -> bool:
    return any(path[: len(p)] == p for p in prefixes)


def _check_vendor(ctx: CompileContext, kind: str, path: Path_, tpl: Template) -> None:
    if isinstance(tpl, MapTemplate):  # ours, not the vendor's: sent as a header
        tpl = MapTemplate(tuple((k, v) for k, v in tpl.items if k != "idempotency_key"))
    body = _probe(tpl)
    if kind.startswith("loops."):
        for spath, text in iter_strings(body):
            if text != _DYNAMIC and loops_length(text) > _LOOPS_MAX:
                ctx.report(
                    (*path, *spath),
                    "VND002",
                    f"Loops accepts at most {_LOOPS_MAX} characters per value; this one "
                    f"has {loops_length(text)}",
                )
        props = body.get("eventProperties") if isinstance(body, dict) else None
        for name, value in props.items() if isinstance(props, dict) else ():
            if isinstance(value, dict | list):
                ctx.report(
                    (*path, "eventProperties", name),
                    "VND003",
                    f"Loops event properties are text, numbers or true/false, not "
                    f"{'an object' if isinstance(value, dict) else 'a list'}: write one property "
                    "per value (planName: Pro, seats: 3)",
                )
    if kind.startswith("quo.") and isinstance(body, dict):
        source = body.get("source")
        if isinstance(source, str) and source != _DYNAMIC and reserved_source(source):
            ctx.report(
                (*path, "source"),
                "VND004",
                f'"{source}" is a source Quo reserves ({RESERVED_SOURCES_TEXT}); Quo refuses '
                'the contact: name your system instead, like "clay" or "custom-crm"',
            )
    if _vendor_schema(kind) is None:
        return
    try:
        _vendor_accepts(kind)(body)
        return  # valid with the markers in: no error to report, whatever they stand for
    except fastjsonschema.JsonSchemaException:
        pass  # perhaps only a marker failing a pattern: find out which errors are real
    dynamic = frozenset(p for p, _ in iter_refs(tpl))
    for epath, message in _vendor_errors(kind, json.dumps(body), dynamic):
        ctx.report((*path, *epath), "VND001", message)


def _touches(path: Path_, dynamic: frozenset[Path_]) -> bool:
    return any(d[: len(path)] == path for d in dynamic)


def _vendor_message(kind: str, err: jsonschema.ValidationError) -> str:
    v = err.validator
    if (
        v in ("anyOf", "oneOf")
        and err.context
        and all(e.validator == "required" for e in err.context)
    ):
        required: list[Any] = [e.validator_value for e in err.context]  # stubs: "Any | Unset"
        names = [str(r[0]) for r in required]
        return f"{kind} needs {' or '.join(names)}"
    if v == "required":
        return f"{kind}: {err.message}"
    if v == "pattern" and isinstance(err.instance, str):
        if "\\+[1-9]" in str(err.validator_value):
            return f'"{err.instance}" is not an E.164 phone number (like "+15555550100")'
        return f'"{err.instance}" does not match the form {kind} expects ({err.validator_value})'
    if v == "maxItems":
        return f"{kind} accepts at most {err.validator_value} item(s) here"
    if v == "maxLength":
        return f"{kind} accepts at most {err.validator_value} characters here"
    return f"{kind}: {err.message}"


def _check_refs(
    ctx: CompileContext,
    path: Path_,
    tpl: Template,
    known: KnownColumns,
    earlier_steps: list[str],
    env_names: set[str],
) -> None:
    for rpath, ref in iter_refs(tpl, path):
        if isinstance(ref, ColumnRef) and known.names is not None:
            if ref.column not in known.names:
                ctx.report(
                    rpath,
                    "REF001",
                    f'unknown column "{ref.column}"{did_you_mean(ref.column, known.names)}; '
                    f"columns come from {known.source}",
                    severity=known.severity,
                    needle="/" + ref.column,
                )
        elif isinstance(ref, StepRef) and ref.step not in earlier_steps:
            hint = did_you_mean(ref.step, earlier_steps)
            ctx.report(
                rpath,
                "REF002",
                f'"/@{ref.step}" does not name an earlier step{hint}; give that step id: '
                f"{ref.step} and refer to it only from steps after it",
                needle="/@" + ref.step,
            )
        elif isinstance(ref, EnvRef):
            env_names.add(ref.name)


def _clearing_nulls(ctx: CompileContext, path: Path_, tpl: MapTemplate) -> MapTemplate:
    """A contact property written as ``null`` in ``loops.update_contact`` clears it in Loops:
    marked ``CLEAR`` (sent as ``null``), and lint says so."""
    items = []
    for key, value in tpl.items:
        if isinstance(value, Literal) and value.value is None and key not in ("email", "userId"):
            ctx.report(
                (*path, key),
                "VND006",
                f"null clears {key} in Loops (Loops resets a property sent as null); to leave "
                f"{key} as it is, leave the key out (a /Column that is missing or null is left "
                "out)",
                severity=Severity.WARNING,
                at_key=True,
            )
            value = Literal(CLEAR)
        items.append((key, value))
    return MapTemplate(tuple(items))


def _path_url(tpl: MapTemplate, url: Any) -> MapTemplate:
    """An http.request ``url`` written as a path (``/v1/contacts/{/@find.data[0].id}``, with
    ``connection:``) is a path, not a ``/Column`` reference: whole-value references cannot name
    a URL anyway (its host must be written out)."""
    if not isinstance(url, str) or not url.startswith("/") or url.startswith("//"):
        return tpl
    parsed = parse_template("\x00" + url)  # anything before the "/" makes it text
    if isinstance(parsed, Literal):
        path: Template = Literal(url)
    else:
        assert isinstance(parsed, Text) and isinstance(parsed.parts[0], str)
        path = Text((parsed.parts[0][1:], *parsed.parts[1:]))
    return MapTemplate(tuple((k, path if k == "url" else v) for k, v in tpl.items))


def _http_template(ctx: CompileContext, path: Path_, tpl: MapTemplate) -> MapTemplate:
    """Check an http.request's URL, and compile it so that values read into it are
    percent-encoded (``UrlText``)."""
    items = dict(tpl.items)
    url = items.get("url")
    if url is None:
        return tpl
    connection = items.get("connection")
    if connection is not None:
        _check_connection_path(ctx, (*path, "url"), url)
    else:
        _check_url(ctx, (*path, "url"), url)
    if isinstance(url, Text) and not isinstance(url, UrlText):
        items["url"] = UrlText(url.parts)
        return MapTemplate(tuple(items.items()))
    return tpl


def _check_connection_path(ctx: CompileContext, path: Path_, tpl: Template) -> None:
    """With ``connection:``, the URL is a path on the provider's API, written out."""
    first = tpl.value if isinstance(tpl, Literal) else None
    if isinstance(tpl, Text):
        first = tpl.parts[0]
    if isinstance(first, str) and first.startswith("/") and not first.startswith("//"):
        return
    ctx.report(
        path,
        "REF004",
        "with connection:, url is a path on the provider's API written out, like "
        "/v1/contacts or /v1/contacts/{/@find.data[0].id}; the base URL, the key and the Maton "
        "route come from the connection",
    )


def _check_url(ctx: CompileContext, path: Path_, tpl: Template) -> None:
    """The host of an http.request URL must be written out or come from ``${ENV}``."""
    if not isinstance(tpl, Text | ColumnRef | StepRef):
        return
    first = tpl.parts[0] if isinstance(tpl, Text) else tpl
    if isinstance(first, EnvRef):
        return
    if isinstance(first, str) and re.match(r"https?://[^/?#]+[/?#]", first):
        return
    ctx.report(
        path,
        "REF004",
        "the URL's host cannot come from a /Column or a step's response (it would let a row "
        "send requests anywhere); write the host out and use {/Column} only in the path or query",
    )


def condition_steps(condition: Condition) -> tuple[str, ...]:
    """The step ids an action's (compiled) ``only_run_if`` reads as ``@step``."""
    from automations.recipes.compiler import condition_fields

    return tuple(
        f[len(STEP_FIELD) :] for f in condition_fields(condition.source) if f.startswith(STEP_FIELD)
    )


def _condition_steps(
    ctx: CompileContext, path: Path_, condition: Condition | None, earlier: list[str]
) -> tuple[str, ...]:
    """The steps ``condition`` reads; REF002 for one that is not an earlier step."""
    if condition is None:
        return ()
    steps = condition_steps(condition)
    for step in steps:
        if step not in earlier:
            ctx.report(
                path,
                "REF002",
                f'"@{step}" does not name an earlier step{did_you_mean(step, earlier)}; give '
                f"that step id: {step} and refer to it only from steps after it",
                needle="@" + step,
            )
    return tuple(s for s in steps if s in earlier)


def compile_actions(
    ctx: CompileContext,
    raw: Any,
    known: KnownColumns,
    env_names: set[str],
    *,
    error_lines: set[int] | None = None,
) -> tuple[Action, ...]:
    actions: list[Action] = []
    if not isinstance(raw, list):
        return ()
    earlier: list[str] = []
    starts = [ctx.doc.positions.of_value(("actions", i))[0] for i in range(len(raw))]
    for i, item in enumerate(raw):
        end = starts[i + 1] if i + 1 < len(starts) else 1 << 30
        vendor = not any(starts[i] <= line < end for line in error_lines or ())
        if not isinstance(item, dict):
            continue
        kinds = [k for k in item if k in ACTION_KINDS]
        if len(kinds) != 1:
            continue
        kind = kinds[0]
        path: Path_ = ("actions", i, kind)
        written_id = item.get("id")
        step_id = written_id if isinstance(written_id, str) else f"{i + 1}"
        if step_id in earlier:
            ctx.report(("actions", i, "id"), "ACT001", f'step id "{step_id}" is used twice')
        cond_path: Path_ = ("actions", i, "only_run_if")
        raw_cond = item.get("only_run_if")
        condition = compile_expr(
            ctx, cond_path, quote_step_refs(raw_cond) if isinstance(raw_cond, str) else raw_cond
        )
        reads = set(_condition_steps(ctx, cond_path, condition, earlier))
        params = item[kind]
        if isinstance(params, dict):

            def bad_ref(rel: Path_, msg: str, _p: Path_ = path) -> None:
                ctx.report((*_p, *rel), "REF003", f"invalid reference: {msg}")

            tpl = parse_template(params, bad_ref)
            if kind == "http.request" and isinstance(tpl, MapTemplate):
                tpl = _path_url(tpl, params.get("url"))
            if kind == "loops.update_contact" and isinstance(tpl, MapTemplate):
                tpl = _clearing_nulls(ctx, path, tpl)
            _check_refs(ctx, path, tpl, known, earlier, env_names)
            _check_secrets(ctx, path, params)
            check_action_text(ctx, path, kind, list(iter_strings(params, path)), tpl, known.names)
            if kind == "http.request" and isinstance(tpl, MapTemplate):
                tpl = _http_template(ctx, path, tpl)
            elif vendor:
                _check_vendor(ctx, "quo.create_contact" if kind == UPSERT else kind, path, tpl)
            reads.update(ref.step for _, ref in iter_refs(tpl) if isinstance(ref, StepRef))
            line = ctx.doc.positions.of_value(path)[0]
            if kind == UPSERT and isinstance(tpl, MapTemplate):
                expanded = expand_upsert(step_id, tpl, condition, line, frozenset(reads))
                actions.extend(expanded)
                earlier.extend(a.id for a in expanded)
            else:
                actions.append(Action(kind, step_id, tpl, condition, line, frozenset(reads)))
        earlier.append(step_id)
    return tuple(actions)
