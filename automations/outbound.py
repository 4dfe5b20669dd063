"""An outbound request, as the action adapters build it and the connections send it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Connection", "OutboundRequest", "SendResult"]


class Connection(enum.Enum):
    """Which provider connection (API key, rate limiter, base URL) a request goes through."""

    #: Quo (OpenPhone), directly or through the Maton gateway.
    QUO = "quo"
    #: Loops.
    LOOPS = "loops"
    #: Any URL (``http.request``); no shared credentials.
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """A fully rendered request. ``path`` is relative to the connection's base (``/v1/messages``)
    except for ``Connection.HTTP``, where it is the absolute URL."""

    connection: Connection
    method: str
    path: str
    json: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    #: Sent as ``Idempotency-Key``; stable across retries and restarts.
    idempotency_key: str | None = None
    #: Whether sending the same request twice is harmless (idempotent or keyed). A Quo SMS is not:
    #: after an ambiguous failure it is recorded ``unknown`` instead of being resent.
    resend_safe: bool = True
    #: Status codes that count as success besides 2xx (Loops answers 409 for a reused key,
    #: meaning "already accepted").
    also_success: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What came back for a request that succeeded."""

    status: int
    body: Any
    attempts: int
    duration_ms: float
    #: The exact URL and headers sent (headers already masked), for the audit.
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()
