"""``GET /metrics``: the registry in the Prometheus text format, on the console's listener.

Who may read it follows the console's rule (``console/auth.py``): without a console token the
console listens on loopback only (and answers only to a loopback ``Host``), and ``/metrics`` is
open to whoever can reach it there; with ``AUTOMATIONS_UI_TOKEN`` set, on any address, only a
request with ``Authorization: Bearer <token>`` (compared in constant time: what Prometheus sends
with ``authorization: {credentials: ...}`` in its scrape config) or one the console lets in
(``also``: its signed session cookie, for a person in a browser). Anything else is answered 401
with ``WWW-Authenticate: Bearer`` and no metric.

The collectors read the store, so the exposition is built on a worker thread: a locked database
delays the scrape, never the event loop the console and the webhooks share. A scraper asking
for OpenMetrics (``Accept: application/openmetrics-text``) gets it.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["bearer_matches", "metrics_endpoint"]


def bearer_matches(authorization: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <token>`` (constant time); always
    false without a token."""
    if not token or not authorization:
        return False
    scheme, _, supplied = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(supplied.strip().encode("utf-8"), token.encode("utf-8"))


def metrics_endpoint(
    registry: CollectorRegistry,
    *,
    token: str | None,
    also: Callable[[Request], bool] | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """The ``/metrics`` handler; ``token`` is the console's token (``None`` when unset: the
    console is then on loopback only, and so is this)."""

    async def metrics(request: Request) -> Response:
        if token is not None and not (
            bearer_matches(request.headers.get("authorization"), token)
            or (also is not None and also(request))
        ):
            return JSONResponse(
                {"error": "send the console token: Authorization: Bearer <token>"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="automations"'},
            )
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = await asyncio.to_thread(encoder, registry)
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    return metrics
