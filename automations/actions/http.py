"""``http.request``: any HTTP endpoint, for the services without an adapter.

The body is ``{method, url, headers?, query?, json?, connection?}``. The recipe compiler makes
sure the URL's host is static (a row cannot redirect a request elsewhere) and percent-encodes
values read into it; here the URL only has to be absolute ``http(s)``. Only methods that are
idempotent by definition, and a ``POST`` or ``PATCH`` carrying its own ``Idempotency-Key`` header,
are resent after an outcome that may have been processed (a 5xx, a timeout); any other request is
sent again only when it provably never arrived.

``connection: quo | loops`` sends through that provider's connection: ``url`` is then a path on
its API (``/v1/contacts``), and the base URL, the API key, the Maton route and the per-key pacing
are the connection's, exactly as for the provider's own actions.

``query`` is a mapping of query parameters, percent-encoded; a list value repeats the parameter
(``externalIds=a&externalIds=b``, as OpenAPI's default ``form`` style), a null one is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from automations.errors import RenderError
from automations.outbound import Connection, OutboundRequest
from automations.templates import to_text
from automations.vendor import require_mapping

__all__ = ["HTTP_REQUEST", "HttpRequest", "explain_http_error", "with_query"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Methods whose repetition is harmless (RFC 9110 idempotent methods).
RESEND_SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
FIELDS = frozenset({"method", "url", "headers", "json", "query", "connection"})
#: ``connection:`` values and the connection each names.
CONNECTIONS = {"quo": Connection.QUO, "loops": Connection.LOOPS}

ErrorExplanation = tuple[str | None, str | None, str | None]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    kind: str = "http.request"
    connection: Connection = Connection.HTTP

    def build(
        self, body: Any, *, run_id: str, step_index: int, phone_region: str
    ) -> OutboundRequest:
        body = require_mapping(self.kind, body)
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise RenderError(
                f"unknown field(s) {', '.join(unknown)}; http.request takes method, url, headers,"
                " query, json, connection",
                path=unknown[0],
            )
        method = body.get("method", "POST")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise RenderError(
                f"{method!r} is not an HTTP method ({', '.join(sorted(METHODS))})", path="method"
            )
        method = method.upper()
        url = body.get("url")
        named = body.get("connection")
        connection = CONNECTIONS.get(named) if isinstance(named, str) else None
        if named is not None and connection is None:
            raise RenderError(f"{named!r} is not a connection (quo, loops)", path="connection")
        if connection is not None:
            if not isinstance(url, str) or not url.startswith("/") or url.startswith("//"):
                raise RenderError("with connection:, url is a path like /v1/contacts", path="url")
        else:
            if not isinstance(url, str):
                raise RenderError("needs an absolute http(s) URL", path="url")
            try:
                parsed = httpx.URL(url)
            except httpx.InvalidURL as exc:
                raise RenderError(f"is not a valid URL ({exc})", path="url") from None
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise RenderError(
                    "needs an absolute http(s) URL, like https://host/path", path="url"
                )
        url = with_query(url, body.get("query"))
        headers = _headers(body.get("headers"))
        keyed = any(name.lower() == "idempotency-key" and value for name, value in headers)
        return OutboundRequest(
            connection or Connection.HTTP,
            method,
            url,
            json=body.get("json"),
            headers=headers,
            resend_safe=method in RESEND_SAFE_METHODS or keyed,
        )

    def explain_error(self, status: int, body: Any) -> ErrorExplanation:
        return explain_http_error(status, body)


HTTP_REQUEST = HttpRequest()


def with_query(url: str, query: Any) -> str:
    """``url`` with the parameters of ``query`` appended, percent-encoded."""
    if query is None:
        return url
    if not isinstance(query, Mapping):
        raise RenderError("must be a mapping of parameter names to values", path="query")
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            if isinstance(item, Mapping | list):
                raise RenderError("must be text, a number or a list of them", path=f"query.{name}")
            pairs.append((str(name), to_text(item)))
    if not pairs:
        return url
    encoded = urlencode(pairs, quote_via=quote)
    return f"{url}{'&' if '?' in url else '?'}{encoded}"


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise RenderError("must be a mapping of header names to values", path="headers")
    out: list[tuple[str, str]] = []
    for name, value in raw.items():
        if value is None:
            continue
        if isinstance(value, Mapping | list) or not str(name).strip():
            raise RenderError("must be a text value", path=f"headers.{name}")
        out.append((str(name), value if isinstance(value, str) else str(value)))
    return tuple(out)


def explain_http_error(status: int, body: Any) -> ErrorExplanation:
    """``(message, code, advice)`` from the common error shapes (``message``, ``error``, ...)."""
    message: str | None = None
    code: str | None = None
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message, code = _str(error.get("message")), _str(error.get("code"))
        else:
            message = _str(body.get("message")) or _str(error) or _str(body.get("detail"))
            message = message or _str(body.get("title"))
            code = _str(body.get("code"))
    elif isinstance(body, str):
        message = _str(body)
    if status in (401, 403):
        advice = "the endpoint refused the credentials: check the headers' ${ENV} variables"
    elif status == 404:
        advice = "nothing at that URL: check the action's url"
    elif 400 <= status < 500 and status != 429:
        advice = "the endpoint refused the request: check the action's body and headers"
    elif status == 429 or status >= 500:
        advice = "the endpoint is overloaded or failing: try again later (automations replay)"
    else:
        advice = None
    return message, code, advice


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    return str(value).strip()[:300] or None
