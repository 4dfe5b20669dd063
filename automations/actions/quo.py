"""Quo (OpenPhone) actions: contacts (create, find by ``externalId``, update; the upsert is
compiled from these three, ``recipes/upsert.py``), SMS, call summaries and transcripts, and the
workspace's phone numbers.

Phone fields are normalized to E.164 with the recipe's region before the body is checked against
Quo's own request schema; a number that cannot be read stops the step before anything is sent.
A preview's ``${NAME}`` placeholder (an unset variable) is left as it is.

An SMS is not resend-safe: ``POST /v1/messages`` has no idempotency key, so a send that may have
reached Quo is recorded ``unknown`` rather than tried again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from automations.actions.endpoint import EndpointAction
from automations.errors import RenderError
from automations.outbound import Connection, OutboundRequest
from automations.phone import to_e164
from automations.vendor import is_placeholder, require_mapping, require_valid

__all__ = [
    "CREATE_CONTACT",
    "FIND_CONTACTS",
    "GET_CALL_SUMMARY",
    "GET_CALL_TRANSCRIPT",
    "LIST_PHONE_NUMBERS",
    "SEND_SMS",
    "UPDATE_CONTACT",
    "QuoCreateContact",
    "QuoSendSms",
    "contact_fields",
    "explain_quo_error",
]

#: Quo's code for "A2P Registration Not Approved" (400 on POST /v1/messages).
A2P_NOT_APPROVED = "0206400"

ErrorExplanation = tuple[str | None, str | None, str | None]

#: Contact ``source`` values Quo keeps for itself (its spec's description of ``source``).
RESERVED_SOURCES = frozenset({"openphone", "device", "csv", "zapier", "google-people", "other"})
RESERVED_SOURCE_PREFIXES = ("openphone", "csv")
RESERVED_SOURCES_TEXT = (
    "openphone, device, csv, zapier, google-people, other, or starting with openphone or csv"
)


def reserved_source(source: str) -> bool:
    """Whether Quo refuses ``source`` as a contact's source (reserved word or prefix)."""
    return source in RESERVED_SOURCES or source.startswith(RESERVED_SOURCE_PREFIXES)


def check_source(body: Mapping[str, Any]) -> None:
    """``RenderError`` (nothing sent) when the body's ``source`` is one Quo reserves."""
    source = body.get("source")
    if isinstance(source, str) and reserved_source(source):
        raise RenderError(
            f'"{source}" is a source Quo reserves ({RESERVED_SOURCES_TEXT}): name your system '
            'instead, like "clay"',
            path="source",
        )


@dataclass(frozen=True, slots=True)
class QuoCreateContact:
    """``POST /v1/contacts`` (201). ``defaultFields.phoneNumbers[].value`` becomes E.164."""

    kind: str = "quo.create_contact"
    connection: Connection = Connection.QUO

    def build(
        self, body: Any, *, run_id: str, step_index: int, phone_region: str
    ) -> OutboundRequest:
        out = contact_fields(dict(require_mapping(self.kind, body)), phone_region)
        require_valid(self.kind, out)
        # POST /v1/contacts has no idempotency key either: a resend after a lost answer would
        # create the contact twice, so an ambiguous outcome is recorded ``unknown`` instead
        return OutboundRequest(Connection.QUO, "POST", "/v1/contacts", json=out, resend_safe=False)

    def explain_error(self, status: int, body: Any) -> ErrorExplanation:
        return explain_quo_error(status, body)


@dataclass(frozen=True, slots=True)
class QuoSendSms:
    """``POST /v1/messages`` (202). ``to[]`` and ``from`` (unless a ``PN...`` id) become E.164.

    ``to`` may be given as a single value; it is sent as the one-element list Quo expects.
    """

    kind: str = "quo.send_sms"
    connection: Connection = Connection.QUO

    def build(
        self, body: Any, *, run_id: str, step_index: int, phone_region: str
    ) -> OutboundRequest:
        body = require_mapping(self.kind, body)
        out = dict(body)
        if "to" in out:
            to = out["to"] if isinstance(out["to"], list) else [out["to"]]
            out["to"] = [
                to_e164(v, phone_region, path=f"to[{i}]") if not is_placeholder(v) else v
                for i, v in enumerate(to)
            ]
        sender = out.get("from")
        if _is_number(sender) and not (isinstance(sender, str) and sender.startswith("PN")):
            out["from"] = to_e164(sender, phone_region, path="from")
        require_valid(self.kind, out)
        return OutboundRequest(Connection.QUO, "POST", "/v1/messages", json=out, resend_safe=False)

    def explain_error(self, status: int, body: Any) -> ErrorExplanation:
        return explain_quo_error(status, body)


def contact_fields(body: dict[str, Any], phone_region: str) -> dict[str, Any]:
    """A contact body (create, update, upsert) ready for Quo: ``defaultFields.phoneNumbers[]``
    values in E.164, the ``source`` checked against Quo's reserved words."""
    out = dict(body)
    fields = out.get("defaultFields")
    if isinstance(fields, Mapping) and isinstance(fields.get("phoneNumbers"), list):
        fields = dict(fields)
        numbers = []
        for i, entry in enumerate(fields["phoneNumbers"]):
            if isinstance(entry, Mapping) and _is_number(entry.get("value")):
                path = f"defaultFields.phoneNumbers[{i}].value"
                entry = {**entry, "value": to_e164(entry["value"], phone_region, path=path)}
            numbers.append(entry)
        fields["phoneNumbers"] = numbers
        out["defaultFields"] = fields
    check_source(out)
    return out


def _is_number(value: Any) -> bool:
    """Whether a phone field holds a value to normalize: not empty, not a preview placeholder."""
    return value is not None and not is_placeholder(value)


CREATE_CONTACT = QuoCreateContact()
SEND_SMS = QuoSendSms()


def explain_quo_error(
    status: int, body: Any, *, path: str = "/v1/messages", gateway: bool = False
) -> ErrorExplanation:
    """``(vendor_message, vendor_code, advice)`` for a Quo error answer to a request for ``path``
    (advice differs by endpoint: a 403 on contacts is not an SMS problem); ``gateway`` when it
    came through Maton.

    Understands Quo's own shape ``{message, code, status, title, errors: [...]}`` and the
    gateway shape ``{"error": {"message": ...}}``.
    """
    message, code = _message_and_code(body)
    resource = _resource(path)
    if status == 400 and code == A2P_NOT_APPROVED:
        advice = (
            "the sending number's US carrier registration (A2P 10DLC) is not approved: texts "
            "from it to US numbers fail until Quo approves the registration"
        )
    elif status == 400:
        advice = "Quo refused the request's fields: correct the action's parameters"
    elif status == 401 and gateway:
        advice = "Maton rejected the API key: check MATON_API_KEY"
    elif status == 401:
        advice = "Quo rejected the API key: check QUO_API_KEY (or MATON_API_KEY through Maton)"
    elif status == 402:
        advice = "the Quo workspace has not enough prepaid API credits: add credits, then replay"
    elif status == 403 and resource == "messages":
        advice = (
            "the API key's user is not a user of that phone number: send from a number the key's "
            "user belongs to, or use a key of one of that number's users"
        )
    elif status == 403:
        advice = (
            f"Quo refused access to {resource}: the API key (or the Maton connection) is not "
            f"allowed to use {resource} in this workspace; this is not about phone numbers"
        )
    elif status == 404 and resource == "contacts":
        advice = "Quo has no contact with that id (deleted in Quo?): look it up again"
    elif status == 404 and resource in ("call-summaries", "call-transcripts"):
        advice = (
            "Quo has no summary or transcript for that call (yet): they are made after the call "
            "ends, only on plans with call summaries and transcripts; replay later"
        )
    elif status == 404:
        advice = "Quo found no such resource: check the ids in the request (phone number, user)"
    elif status == 429:
        advice = "Quo's rate limit (10 requests per second per key) was hit: lower QUO_RATE_LIMIT"
    elif status >= 500 and gateway:
        advice = (
            "the Maton gateway failed: this usually means the Quo OAuth connection in Maton "
            "expired or was revoked; reconnect Quo in Maton (MATON_CONNECTION), then replay"
        )
    elif status >= 500:
        advice = "Quo had a server error: try again later (automations replay)"
    else:
        advice = None
    return message, code, advice


def _resource(path: str) -> str:
    """``/v1/contacts/abc?x=1`` -> ``contacts``."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def _message_and_code(body: Any) -> tuple[str | None, str | None]:
    if isinstance(body, str):
        return (body.strip()[:300] or None), None
    if not isinstance(body, Mapping):
        return None, None
    error = body.get("error")
    if isinstance(error, Mapping):
        return _text(error.get("message")), _text(error.get("code"))
    if isinstance(error, str):
        return error[:300], _text(body.get("code"))
    message = _text(body.get("message")) or _text(body.get("title"))
    details = body.get("errors")
    if isinstance(details, list) and details and isinstance(details[0], Mapping):
        first = details[0]
        detail = ": ".join(x for x in (_text(first.get("path")), _text(first.get("message"))) if x)
        if detail:
            message = f"{message} ({detail})" if message else detail
    return message, _text(body.get("code"))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    text = str(value).strip()
    return text[:300] or None


def _explain(path: str) -> Callable[[int, Any], ErrorExplanation]:
    return functools.partial(explain_quo_error, path=path)


#: ``GET /v1/contacts`` by ``externalIds`` (``maxResults`` 1-50, required by Quo).
FIND_CONTACTS = EndpointAction("quo.find_contacts", Connection.QUO, _explain("/v1/contacts"))
#: ``PATCH /v1/contacts/{id}``: sets the fields given; resend-safe (setting is idempotent).
UPDATE_CONTACT = EndpointAction(
    "quo.update_contact", Connection.QUO, _explain("/v1/contacts/{id}"), prepare=contact_fields
)
GET_CALL_SUMMARY = EndpointAction(
    "quo.get_call_summary", Connection.QUO, _explain("/v1/call-summaries/{callId}")
)
GET_CALL_TRANSCRIPT = EndpointAction(
    "quo.get_call_transcript", Connection.QUO, _explain("/v1/call-transcripts/{id}")
)
LIST_PHONE_NUMBERS = EndpointAction(
    "quo.list_phone_numbers", Connection.QUO, _explain("/v1/phone-numbers")
)
