"""The one way out to the network: provider settings, pacing, retries.

``ConnectionSettings.from_env`` reads which provider endpoints and API keys to use. ``Connections``
owns one ``httpx.AsyncClient`` and one ``RateLimiter`` per API key, and ``send`` carries an
``OutboundRequest`` to a ``SendResult`` or a ``ProviderError``:

    attempt := wait for the key's rate-limiter slot, send (reporting when it left)
      2xx or an ``also_success`` status     -> SendResult
      504 to a request not resend_safe       -> AmbiguousSendError (the gateway timed out while
                                                the provider may have acted)
      429, 408, other 5xx                    -> wait (Retry-After or backoff), attempt again
      connect error (nothing was sent)       -> wait, attempt again
      no answer after sending                -> resend_safe: wait, attempt again
                                                else: AmbiguousSendError (never resent)
      any other status                       -> ProviderError (permanent, with advice)
    attempts capped by RetryPolicy.max_attempts and max_total

Quo goes direct (``QUO_API_KEY``, raw key in ``Authorization``) or through the Maton gateway
(``MATON_API_KEY``, Bearer), direct whenever ``QUO_API_KEY`` is set unless
``AUTOMATIONS_QUO_VIA=maton``.

The package by role: ``client`` (``Connections``: pacing, the retry loop), ``wire`` (the request
bytes of one attempt, reading answers), ``outcome`` (results and errors, secrets masked); where
each connection sends is ``automations.endpoints``.
"""

from __future__ import annotations

from automations.connections.client import Connections
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
    "mask_headers",
    "mask_url",
    "parse_rate",
    "read_body",
]
