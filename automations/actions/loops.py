"""Loops actions: contacts (update, find, delete), events and transactional email.

Both are safe to resend: updating a contact is an idempotent ``PUT``, and every event carries an
``Idempotency-Key`` derived from the run and the step, the same on every retry and after a
restart. Loops answers 409 to a key it has seen in the last 24 hours, which means the event was
already accepted: the step counts as succeeded.

Before sending:

- ``null`` values (an empty column) are left out, at the top level and in ``eventProperties``:
  Loops' schema allows no nulls, and leaving a field out keeps what Loops already has.
- A contact property the recipe itself sets to ``null`` (``lastName: null`` written in
  ``loops.update_contact``) is sent as ``null``: Loops documents that as "reset this property".
  The compiler marks it with ``CLEAR``; the rest of the body is checked against Loops' schema.
- Text values longer than 500 characters are refused (Loops' documented cap, counted as Loops
  counts: JavaScript string length, so an emoji outside the Basic Multilingual Plane counts 2),
  as is any body Loops' own request schema would refuse.
- ``eventProperties`` values must be text, a number or true/false (Loops stores nothing else; its
  schema only says "object").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from automations.actions.endpoint import EndpointAction, idempotency_key_from
from automations.errors import RenderError
from automations.outbound import Connection, OutboundRequest
from automations.vendor import format_path, require_mapping, require_valid

__all__ = [
    "CLEAR",
    "DELETE_CONTACT",
    "FIND_CONTACT",
    "MAX_VALUE_CHARS",
    "SEND_EVENT",
    "SEND_TRANSACTIONAL",
    "UPDATE_CONTACT",
    "LoopsSendEvent",
    "LoopsUpdateContact",
    "event_idempotency_key",
    "explain_loops_error",
    "loops_length",
]

#: Loops refuses longer string values.
MAX_VALUE_CHARS = 500
#: A property the recipe wrote as ``null`` (the compiler's mark; sent as ``null``, which Loops
#: documents as clearing the property).
CLEAR = "\x00automations:clear"
#: Loops' limit for ``Idempotency-Key``.
MAX_KEY_CHARS = 100

ErrorExplanation = tuple[str | None, str | None, str | None]


@dataclass(frozen=True, slots=True)
class LoopsUpdateContact:
    """``PUT /v1/contacts/update`` (creates the contact when none matches)."""

    kind: str = "loops.update_contact"
    connection: Connection = Connection.LOOPS

    def build(
        self, body: Any, *, run_id: str, step_index: int, phone_region: str
    ) -> OutboundRequest:
        body = require_mapping(self.kind, body)
        cleared = [k for k, v in body.items() if v == CLEAR]
        out = _prepared(self.kind, {k: v for k, v in body.items() if v != CLEAR})
        out.update(dict.fromkeys(cleared))
        return OutboundRequest(Connection.LOOPS, "PUT", "/v1/contacts/update", json=out)

    def explain_error(self, status: int, body: Any) -> ErrorExplanation:
        return explain_loops_error(status, body)


@dataclass(frozen=True, slots=True)
class LoopsSendEvent:
    """``POST /v1/events/send`` with an ``Idempotency-Key`` from ``(run_id, step_index)``."""

    kind: str = "loops.send_event"
    connection: Connection = Connection.LOOPS
    also_success: frozenset[int] = field(default=frozenset({409}))

    def build(
        self, body: Any, *, run_id: str, step_index: int, phone_region: str
    ) -> OutboundRequest:
        body = dict(require_mapping(self.kind, body))
        key = idempotency_key_from(body.pop("idempotency_key", None), run_id, step_index)
        out = _prepared(self.kind, body)
        return OutboundRequest(
            Connection.LOOPS,
            "POST",
            "/v1/events/send",
            json=out,
            idempotency_key=key,
            resend_safe=True,
            also_success=self.also_success,
        )

    def explain_error(self, status: int, body: Any) -> ErrorExplanation:
        return explain_loops_error(status, body)


UPDATE_CONTACT = LoopsUpdateContact()
SEND_EVENT = LoopsSendEvent()


def _identified(params: dict[str, Any], phone_region: str) -> dict[str, Any]:
    """A contact lookup or deletion names the contact: ``email`` or ``userId``."""
    out = {k: v for k, v in params.items() if v is not None and v != ""}
    if "email" not in out and "userId" not in out:
        raise RenderError("needs email or userId (the contact to look up)")
    return out


def _transactional(params: dict[str, Any], phone_region: str) -> dict[str, Any]:
    return _prepared("loops.send_transactional", params, validate=False)


#: ``GET /v1/contacts/find`` by ``email`` or ``userId``: a list, empty when nobody matches.
FIND_CONTACT = EndpointAction(
    "loops.find_contact",
    Connection.LOOPS,
    lambda s, b: explain_loops_error(s, b),
    prepare=_identified,
)
#: ``POST /v1/transactional`` with an ``Idempotency-Key`` (``idempotency_key:``, else the run's
#: and step's): safe to resend, and 409 (the key was seen) means it was already accepted.
SEND_TRANSACTIONAL = EndpointAction(
    "loops.send_transactional",
    Connection.LOOPS,
    lambda s, b: explain_loops_error(s, b),
    also_success=frozenset({409}),
    prepare=_transactional,
    keyed=True,
)
#: ``POST /v1/contacts/delete``. Loops' spec requires both ``email`` and ``userId``.
DELETE_CONTACT = EndpointAction(
    "loops.delete_contact", Connection.LOOPS, lambda s, b: explain_loops_error(s, b)
)


def event_idempotency_key(run_id: str, step_index: int) -> str:
    """The ``Idempotency-Key`` of step ``step_index`` of run ``run_id``: stable, <= 100 chars.

    Readable (``automations-<run_id>-<step>``) when it fits, else a SHA-256 of the same. Run ids
    must be unique across every database sending to one Loops team within 24 hours.
    """
    key = f"automations-{run_id}-{step_index}"
    if len(key) <= MAX_KEY_CHARS:
        return key
    return "automations-" + hashlib.sha256(f"{run_id}\x00{step_index}".encode()).hexdigest()


def loops_length(text: str) -> int:
    """The length Loops measures (a JavaScript string's: UTF-16 code units)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _prepared(kind: str, body: Mapping[str, Any], *, validate: bool = True) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if v is not None}
    props = out.get("eventProperties")
    if isinstance(props, Mapping):
        out["eventProperties"] = {k: v for k, v in props.items() if v is not None}
        for key, value in out["eventProperties"].items():
            if isinstance(value, Mapping | list):
                raise RenderError(
                    f"is {'an object' if isinstance(value, Mapping) else 'a list'}; Loops event "
                    "properties are text, numbers or true/false",
                    path=f"eventProperties.{key}",
                )
    _check_lengths(out, ())
    if validate:
        require_valid(kind, out)
    return out


def _check_lengths(value: Any, path: tuple[str | int, ...]) -> None:
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS // 2 and loops_length(value) > MAX_VALUE_CHARS:
            counted = "" if value.isascii() else " as Loops counts them (UTF-16 units)"
            raise RenderError(
                f"is {loops_length(value)} characters long{counted}; Loops accepts at most "
                f"{MAX_VALUE_CHARS}",
                path=format_path(path),
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_lengths(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_lengths(item, (*path, i))


def explain_loops_error(status: int, body: Any) -> ErrorExplanation:
    """``(vendor_message, vendor_code, advice)`` for a Loops error (``{success, message}``)."""
    message: str | None = None
    if isinstance(body, Mapping):
        raw = body.get("message")
        if raw is None and isinstance(body.get("error"), Mapping):
            raw = body["error"].get("message")
        message = str(raw).strip()[:300] or None if raw is not None else None
    elif isinstance(body, str):
        message = body.strip()[:300] or None
    if status == 400:
        advice = message or "Loops refused the request's fields: correct the action's parameters"
    elif status in (401, 403):
        advice = "Loops rejected the API key: check LOOPS_API_KEY"
    elif status == 404:
        advice = "Loops found no such resource: check the contact or event in the request"
    elif status == 409:
        advice = "Loops has already accepted a request with this idempotency key"
    elif status == 429:
        advice = (
            "Loops' rate limit (10 requests per second per team) was hit: lower LOOPS_RATE_LIMIT"
        )
    elif status >= 500:
        advice = "Loops had a server error: try again later (automations replay)"
    else:
        advice = None
    return message, None, advice
