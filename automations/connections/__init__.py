"""The one way out to the network: provider settings, pacing, retries.

``ConnectionSettings.from_env`` reads which provider endpoints and API keys to use. ``Connections``
owns one ``httpx.AsyncClient`` and one pacer per API key (``pacing``: in this process, or shared
by every node through PostgreSQL), and ``send`` carries an
``OutboundRequest`` to a ``SendResult`` or a ``ProviderError``. Under a client it makes itself,
the bytes go through ``http11.Http11Transport`` (HTTP/1.1 over asyncio; httpx's own transport
when the environment names a proxy):

    attempt := wait for the key's rate-limiter slot, send (reporting when it left)
      2xx or an ``also_success`` status     -> SendResult
      connect error (nothing was sent), 429  -> wait (the vendor's signal or backoff), again:
                                                the outcome proves nothing was processed
      408, 5xx, no (complete) answer         -> resend_safe: wait, attempt again
                                                else: AmbiguousSendError (never resent: the
                                                provider may have acted on it)
      any other status                       -> ProviderError (permanent, with advice)
    attempts capped by RetryPolicy.max_attempts and max_total

A request that is not ``resend_safe`` (a Quo SMS or contact, an ``http.request`` POST/PATCH
without an idempotency key) is therefore sent again only when the outcome proves it was not
processed; anything else that may have reached the provider is left for a person to decide.

Quo goes direct (``QUO_API_KEY``, raw key in ``Authorization``) or through the Maton gateway
(``MATON_API_KEY``, Bearer), direct whenever ``QUO_API_KEY`` is set unless
``AUTOMATIONS_QUO_VIA=maton``.

Every answer is read for the vendor's pacing signal (``signals``: ``Retry-After``, Quo's
``ratelimit``, Loops' ``x-ratelimit-*``), which holds the key's whole rate limiter.

The package by role: ``client`` (``Connections``: pacing, the retry loop), ``wire`` (the request
bytes of one attempt, reading answers), ``http11`` (the transport: pooled HTTP/1.1 connections),
``outcome`` (results and errors, secrets masked),
``signals`` (the vendors' pacing headers), ``pacing`` (one rate limit per key across nodes);
where each connection sends is
``automations.endpoints``.
"""

from __future__ import annotations

from automations.connections.client import Connections
from automations.connections.pacing import Pacing, pacing_for
from automations.connections.wire import read_body
from automations.endpoints import (
    ConnectionSettings,
    Endpoint,
    mask_headers,
    mask_url,
    parse_rate,
)

__all__ = [
    "ConnectionSettings",
    "Connections",
    "Endpoint",
    "Pacing",
    "mask_headers",
    "mask_url",
    "pacing_for",
    "parse_rate",
    "read_body",
]
