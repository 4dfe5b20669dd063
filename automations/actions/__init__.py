"""Action adapters: one per action kind, each turning a rendered body into an ``OutboundRequest``.

    quo.create_contact     POST /v1/contacts          (Quo)
    quo.send_sms           POST /v1/messages          (Quo; never resent after an ambiguous failure)
    loops.update_contact   PUT  /v1/contacts/update   (Loops)
    loops.send_event       POST /v1/events/send       (Loops; Idempotency-Key, 409 = success)
    http.request           any method and URL

``build`` normalizes, validates against the vendor's schema and raises ``RenderError`` before
anything is sent; ``explain_error`` turns a provider's error answer into words and advice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from automations.actions.http import HTTP_REQUEST, explain_http_error
from automations.actions.loops import SEND_EVENT, UPDATE_CONTACT, explain_loops_error
from automations.actions.quo import CREATE_CONTACT, SEND_SMS, explain_quo_error
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
        for spec in (CREATE_CONTACT, SEND_SMS, UPDATE_CONTACT, SEND_EVENT, HTTP_REQUEST)
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
