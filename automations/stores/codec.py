"""How records become stored values, shared by every store so that they all behave alike.

- JSON-shaped fields (``event``, ``row``, ``request``, ``response_body``) are stored as compact JSON
  text (``separators=(",", ":")``, UTF-8 kept as is). A value that is not JSON (a ``datetime`` from
  YAML, a ``Decimal``) is written as its ``str()``: an audit record must never fail to be written.
- A run's ``event`` and ``row`` are stored whole, whatever their size: the event is what the run
  executes on (on resume and replay too), so it is never cut. The intake bounds it instead
  (``--max-body`` for webhooks; table rows by the table's own limits).
- Any other JSON text (a step's ``request`` and ``response_body``: what the audit *shows*) longer
  than ``JSON_TEXT_LIMIT`` bytes is replaced by a marker object
  ``{"__truncated__": <original size in bytes>, "head": "<the start of the JSON text>"}``, itself
  at most ``JSON_TEXT_LIMIT`` bytes. Callers bound response bodies already; this is a safety net
  so that one odd payload cannot bloat the audit log. Databases written before events were kept
  whole may hold such a marker as an event: ``is_truncated`` tells, and the executor refuses to
  run on it.
- Error texts are cut at ``JSON_TEXT_LIMIT`` characters for the same reason.

The in-memory store passes values through the same functions, so a value read back from it is
exactly what the SQLite store would return (tuples become lists, oversized values are marked).
"""

from __future__ import annotations

import dataclasses
import json
import operator
from typing import Any, TypeVar

from automations.records import RunFilter, RunRecord, RunStatus, StepRecord, TriggerKind

__all__ = [
    "JSON_TEXT_LIMIT",
    "TRUNCATED_KEY",
    "UPDATABLE_RUN_FIELDS",
    "cap_text",
    "check_run_changes",
    "dump_event",
    "dump_json",
    "is_truncated",
    "load_json",
    "normalize_event",
    "normalize_json",
    "normalize_run",
    "normalize_step",
    "stored_json",
]

#: The most bytes a stored JSON text (or characters an error text) may take.
JSON_TEXT_LIMIT = 8 * 1024

#: The key that marks a value cut to ``JSON_TEXT_LIMIT``; its value is the original size.
TRUNCATED_KEY = "__truncated__"
#: The ``RunRecord`` fields ``RunStore.update_run`` accepts.
UPDATABLE_RUN_FIELDS = frozenset(
    f.name for f in dataclasses.fields(RunRecord) if f.name not in ("id", "steps")
)

_R = TypeVar("_R", RunRecord, StepRecord)

# Built once: ``json.dumps`` with non-default options builds a new encoder on every call.
# No circular-reference check: values come from JSON, CSV and YAML rows, and a cycle still fails
# (RecursionError instead of ValueError), only without the bookkeeping on every container.
_ENCODE = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, check_circular=False, default=str
).encode
_ENCODE_ASCII = json.JSONEncoder(separators=(",", ":"), check_circular=False, default=str).encode


def dump_json(value: Any) -> str | None:
    """``value`` as compact JSON text (``None`` stays ``None``: SQL ``NULL``), capped in size."""
    if value is None:
        return None
    try:
        text, size = _encode(value)
    except RecursionError:
        # nested deeper than the encoder goes: the audit says so rather than failing the write
        return _ENCODE({TRUNCATED_KEY: None, "head": "(nested too deeply to record)"})
    return text if size <= JSON_TEXT_LIMIT else _truncated(text, size)


def dump_event(value: Any) -> str | None:
    """``value`` (a run's event or row) as compact JSON text, whole."""
    return None if value is None else _encode(value)[0]


def _encode(value: Any) -> tuple[str, int]:
    """The JSON text of ``value`` and its size in UTF-8 bytes."""
    text: str = _ENCODE(value)
    if text.isascii():
        return text, len(text)
    try:
        return text, len(text.encode())
    except UnicodeEncodeError:
        # A lone surrogate (from "\ud800" in some JSON input) cannot be UTF-8: escape it.
        text = _ENCODE_ASCII(value)
        return text, len(text)


def is_truncated(value: Any) -> bool:
    """Whether ``value`` is the marker ``dump_json`` stores in place of an oversized value."""
    return (
        isinstance(value, dict) and TRUNCATED_KEY in value and set(value) <= {TRUNCATED_KEY, "head"}
    )


def _truncated(text: str, size: int) -> str:
    head = text[:JSON_TEXT_LIMIT]
    while True:
        out: str = _ENCODE({TRUNCATED_KEY: size, "head": head})
        excess = len(out.encode()) - JSON_TEXT_LIMIT
        if excess <= 0:
            return out
        # Each character dropped from ``head`` shortens ``out`` by at least one byte.
        head = head[: len(head) - excess]


def load_json(text: str | None) -> Any:
    """The value ``dump_json`` stored."""
    return None if text is None else json.loads(text)


def normalize_json(value: Any) -> Any:
    """``value`` as it reads back from storage."""
    return stored_json(value, dump_json(value))


def normalize_event(value: Any) -> Any:
    """``value`` (an event or row) as it reads back from storage."""
    return stored_json(value, dump_event(value))


def stored_json(value: Any, text: str | None) -> Any:
    """What reads back from ``text`` (``dump_json(value)``): ``value`` itself when it survives
    the round trip unchanged (the usual case), so that callers keep their own object."""
    if text is None:
        return None
    loaded = json.loads(text)
    return value if loaded == value and type(loaded) is type(value) else loaded


def cap_text(text: str | None) -> str | None:
    """``text`` cut to ``JSON_TEXT_LIMIT`` characters, with a note saying how long it was."""
    if text is None or len(text) <= JSON_TEXT_LIMIT:
        return text
    note = f"... [truncated, {len(text)} characters]"
    return text[: JSON_TEXT_LIMIT - len(note)] + note


def normalize_run(run: RunRecord) -> RunRecord:
    """``run`` (steps included) as a store returns it after writing it."""
    steps = tuple(normalize_step(_replace_changed(s, run_id=run.id)) for s in run.steps)
    return _replace_changed(
        run,
        event=normalize_event(run.event),
        row=normalize_event(run.row),
        error=cap_text(run.error),
        steps=run.steps if all(map(operator.is_, steps, run.steps)) else steps,
    )


def normalize_step(step: StepRecord) -> StepRecord:
    """``step`` as a store returns it after writing it."""
    return _replace_changed(
        step,
        request=normalize_json(step.request),
        response_body=normalize_json(step.response_body),
        error=cap_text(step.error),
    )


def _replace_changed(record: _R, **values: Any) -> _R:
    # ``dataclasses.replace`` costs microseconds; most records come through unchanged.
    changed = {k: v for k, v in values.items() if v is not getattr(record, k)}
    return dataclasses.replace(record, **changed) if changed else record


def check_run_changes(fields: dict[str, object]) -> dict[str, object]:
    """Validate ``update_run``'s keyword arguments: names of ``RunRecord`` fields (``id`` and
    ``steps`` excepted), enums as enums. Returns them with text and JSON values normalized.

    Raises ``TypeError`` (a caller's bug, like any unexpected keyword argument).
    """
    unknown = sorted(set(fields) - UPDATABLE_RUN_FIELDS)
    if unknown:
        raise TypeError(f"update_run() got unexpected run field(s): {', '.join(unknown)}")
    changes = dict(fields)
    if "status" in changes and not isinstance(changes["status"], RunStatus):
        raise TypeError(f"update_run(status=...) needs a RunStatus, not {changes['status']!r}")
    if "trigger" in changes and not isinstance(changes["trigger"], TriggerKind):
        raise TypeError(f"update_run(trigger=...) needs a TriggerKind, not {changes['trigger']!r}")
    if "error" in changes:
        error = changes["error"]
        changes["error"] = cap_text(error) if isinstance(error, str) or error is None else error
    return changes


def column_filters(flt: RunFilter, mark: str) -> tuple[list[str], list[object]]:
    """The SQL terms of ``flt``'s plain column filters (recipe, status, time range, skipped
    hidden), with ``mark`` as the parameter placeholder. Every SQL store shares them; cursors
    and the key search are each store's own (they lean on its indexes)."""
    clauses: list[str] = []
    params: list[object] = []
    for term, value in (
        (f"recipe = {mark}", flt.recipe),
        (f"status = {mark}", flt.status.value if flt.status is not None else None),
        (f"created_at >= {mark}", flt.since),
        (f"created_at < {mark}", flt.until),
    ):
        if value is not None:
            clauses.append(term)
            params.append(value)
    if flt.hide_skipped:
        clauses.append("status <> 'skipped'")
    return clauses, params
