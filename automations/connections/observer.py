"""What a ``Connections`` tells an observer as it sends: answers, attempts without one, retries,
and the waits for a rate-limiter slot (``automations.metrics`` counts them for ``/metrics``).

The base class does nothing, so a ``Connections`` without an observer pays one method call per
event. Every argument is a connection name (``quo``, ``loops``, ``http``) and a number or a fixed
word: never a URL, a key or anything from a request's body, so what an observer keeps cannot
carry a secret or a customer's address.
"""

from __future__ import annotations

__all__ = ["NOT_REACHED", "NO_ANSWER", "SendObserver"]

#: The attempt never reached the provider (no connection): safe to send again.
NOT_REACHED = "not_reached"
#: The request left but no complete answer came back (a timeout, a reset).
NO_ANSWER = "no_answer"


class SendObserver:
    """Hooks called by ``Connections.send``; override the ones you need."""

    def waiting(self, connection: str, delta: int) -> None:
        """A request started (``+1``) or stopped (``-1``) waiting for its rate-limiter slot."""

    def waited(self, connection: str, seconds: float) -> None:
        """A request waited ``seconds`` for its rate-limiter slot (0 when one was free)."""

    def answered(self, connection: str, status: int) -> None:
        """An attempt was answered with HTTP ``status``."""

    def unanswered(self, connection: str, reason: str) -> None:
        """An attempt got no answer: ``NOT_REACHED`` or ``NO_ANSWER``."""

    def retrying(self, connection: str, reason: str) -> None:
        """A failed attempt is tried again after a wait: ``reason`` is the status answered
        (``"429"``, ``"503"``) or ``NOT_REACHED`` / ``NO_ANSWER``."""
