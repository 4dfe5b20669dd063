"""Action adapters: one per action kind, each turning a rendered body into an ``OutboundRequest``.

    quo.create_contact        POST  /v1/contacts                 (never resent when ambiguous)
    quo.send_sms              POST  /v1/messages                 (never resent when ambiguous)
    quo.find_contacts         GET   /v1/contacts?externalIds=...
    quo.update_contact        PATCH /v1/contacts/{id}
    quo.upsert_contact        find, then update or create: compiled into those three steps
    quo.get_call_summary      GET   /v1/call-summaries/{callId}
    quo.get_call_transcript   GET   /v1/call-transcripts/{id}
    quo.list_phone_numbers    GET   /v1/phone-numbers
    loops.update_contact      PUT   /v1/contacts/update
    loops.send_event          POST  /v1/events/send              (Idempotency-Key, 409 = success)
    loops.find_contact        GET   /v1/contacts/find?email=...
    loops.send_transactional  POST  /v1/transactional            (Idempotency-Key, 409 = success)
    loops.delete_contact      POST  /v1/contacts/delete
    http.request              any method and URL, or a path through a provider connection

``build`` normalizes, validates against the vendor's schema and raises ``RenderError`` before
anything is sent; ``explain_error`` turns a provider's error answer into words and advice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from automations.actions import loops, quo
from automations.actions.http import HTTP_REQUEST, explain_http_error
from automations.actions.loops import explain_loops_error
from automations.actions.quo import explain_quo_error
from automations.outbound import Connection, OutboundRequest

__all__ = ["ACTIONS", "ActionSpec", "ErrorExplainer", "explainer_for"]

#: ``(status, body) -> (vendor_message, vendor_code, advice)``
ErrorExplainer = Callable[[int, Any], tuple[str | None, str | None, str | None]]


class ActionSpec(Protocol):
    """What the executor needs from an action kind."""

    @property
    def kind(self) -> str:
        """``"quo.send_sms"`` etc., as written in recipes."""
        ...

    @property
    def connection(self) -> Connection:
        """The connection (credentials, rate limiter) requests of this kind go through."""
        ...

    def build(
        self, body: Any, *, run_id: str, step_index: int, phone_region: str
    ) -> OutboundRequest:
        """The request for a rendered ``body`` (a mapping of the vendor's fields); ``RenderError``
        (nothing sent) if it is not a valid one.

        ``run_id`` and ``step_index`` make idempotency keys stable across retries and restarts;
        ``phone_region`` reads phone numbers written without a country code.
        """
        ...

    def explain_error(self, status: int, body: Any) -> tuple[str | None, str | None, str | None]:
        """``(vendor_message, vendor_code, advice)`` for an error answer."""
        ...


ACTIONS: Mapping[str, ActionSpec] = MappingProxyType(
    {
        spec.kind: spec
        for spec in (
            quo.CREATE_CONTACT,
            quo.SEND_SMS,
            quo.FIND_CONTACTS,
            quo.UPDATE_CONTACT,
            quo.GET_CALL_SUMMARY,
            quo.GET_CALL_TRANSCRIPT,
            quo.LIST_PHONE_NUMBERS,
            loops.UPDATE_CONTACT,
            loops.SEND_EVENT,
            loops.FIND_CONTACT,
            loops.SEND_TRANSACTIONAL,
            loops.DELETE_CONTACT,
            HTTP_REQUEST,
        )
    }
)

_EXPLAINERS: Mapping[Connection, ErrorExplainer] = MappingProxyType(
    {
        Connection.QUO: explain_quo_error,
        Connection.LOOPS: explain_loops_error,
        Connection.HTTP: explain_http_error,
    }
)


def explainer_for(
    connection: Connection, path: str | None = None, *, gateway: bool = False
) -> ErrorExplainer:
    """The error explainer of a connection's provider (used when the caller passes none); with
    ``path``, Quo's advice is the endpoint's own (``gateway``: through Maton)."""
    if connection is Connection.QUO and path is not None:
        return functools.partial(explain_quo_error, path=path, gateway=gateway)
    return _EXPLAINERS[connection]
