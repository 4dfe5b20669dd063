"""Actions that are one vendor endpoint each, shaped by the vendor's own spec.

An ``EndpointAction``'s parameters are the endpoint's parameters and body fields, as the vendor
names them (``quo.get_call_summary: {callId: ...}``, ``quo.find_contacts: {externalIds: [...],
maxResults: 1}``). ``build`` checks them against the spec's schema (``automations.vendor``), puts
the path parameters into the path and the query parameters into the query (percent-encoded, a
list repeating the parameter), and sends what is left as the JSON body.

Reads (``GET``) are safe to resend. A write is resend-safe when the endpoint is idempotent by
nature (a ``PATCH`` setting fields) or carries an ``Idempotency-Key``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from automations.actions.http import with_query
from automations.errors import RenderError
from automations.outbound import Connection, OutboundRequest
from automations.vendor import endpoint_shape, is_placeholder, require_mapping, require_valid

__all__ = ["EndpointAction", "idempotency_key_from", "path_for"]

ErrorExplanation = tuple[str | None, str | None, str | None]
#: Loops' limit for ``Idempotency-Key``.
MAX_KEY_CHARS = 100


@dataclass(frozen=True, slots=True)
class EndpointAction:
    """One vendor endpoint as an action kind (see the module docstring)."""

    kind: str
    connection: Connection
    explain: Callable[[int, Any], ErrorExplanation] = field(repr=False)
    #: Whether the endpoint may be called again after an outcome that may have been processed.
    resend_safe: bool = True
    #: Statuses that count as success besides 2xx.
    also_success: frozenset[int] = frozenset()
    #: ``(parameters, phone_region) -> parameters``: the kind's own preparation (E.164 numbers,
    #: nulls), before the check.
    prepare: Callable[[dict[str, Any], str], dict[str, Any]] | None = field(
        default=None, repr=False
    )
    #: Sends an ``Idempotency-Key``: ``idempotency_key:`` in the parameters, else one from the
    #: run and the step.
    keyed: bool = False

    def build(
        self, body: Any, *, run_id: str, step_index: int, phone_region: str
    ) -> OutboundRequest:
        params = dict(require_mapping(self.kind, body))
        key: str | None = None
        if self.keyed:
            key = idempotency_key_from(params.pop("idempotency_key", None), run_id, step_index)
        if self.prepare is not None:
            params = self.prepare(params, phone_region)
        require_valid(self.kind, params)
        shape = endpoint_shape(self.kind)
        path = path_for(shape.path, {n: params.pop(n) for n in shape.path_parameters})
        query = {n: params.pop(n) for n in shape.query_parameters if n in params}
        return OutboundRequest(
            self.connection,
            shape.method,
            with_query(path, query),
            json=params if shape.method in ("POST", "PUT", "PATCH") else None,
            idempotency_key=key,
            resend_safe=self.resend_safe,
            also_success=self.also_success,
        )

    def explain_error(self, status: int, body: Any) -> ErrorExplanation:
        return self.explain(status, body)


def path_for(template: str, values: Mapping[str, Any]) -> str:
    """``/v1/contacts/{id}`` with each parameter percent-encoded into its segment."""
    path = template
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            raise RenderError("needs a non-empty text value", path=name)
        segment = value if is_placeholder(value) else quote(value, safe="")
        path = path.replace("{" + name + "}", segment)
    return path


def idempotency_key_from(written: Any, run_id: str, step_index: int) -> str:
    """The ``Idempotency-Key`` of a step: the recipe's ``idempotency_key:`` when it wrote one
    (so a re-exported row, a new run, does not start a sequence twice), else one from the run and
    the step (stable across retries and restarts). At most 100 characters: a longer one is
    replaced by its SHA-256."""
    if written is None or written == "":
        key = f"automations-{run_id}-{step_index}"
        if len(key) <= MAX_KEY_CHARS:
            return key
        return "automations-" + hashlib.sha256(f"{run_id}\x00{step_index}".encode()).hexdigest()
    if not isinstance(written, str | int):
        raise RenderError("must be text", path="idempotency_key")
    text = str(written)
    if len(text) <= MAX_KEY_CHARS:
        return text
    return "sha256-" + hashlib.sha256(text.encode()).hexdigest()
