"""Every error the engine raises, in one tree.

    AutomationsError
    ├── RecipeError            a recipe is broken; carries diagnostics (file, line, column, code)
    ├── RenderError            a row cannot be rendered into a request (bad phone number, ...)
    ├── ConfigError            the environment lacks something (an API key variable, ...)
    ├── SignatureError         an incoming webhook failed verification
    ├── EventError             an incoming event is not a value the engine takes (poison JSON)
    ├── ProviderError          a provider answered with an error; carries request and response
    │   ├── AmbiguousSendError the request may or may not have reached the provider
    │   └── ConnectionPausedError  the connection's breaker is open: nothing was sent
    ├── RefusedError           an operator action would break a promise (a second replay, ...)
    ├── StoreError             the run store cannot do what was asked (unknown run id, ...)
    ├── LeaseLost              this runner no longer holds a run (its lease expired and another
    │                          node took it): it stops the run without sending or writing more
    ├── StartupError           the runner cannot start (its port is taken, ...); nothing was read
    ├── TableFileError         a table file may not be read (outside the recipes directory,
    │                          not a regular file, too large)
    └── TableDatabaseError     a database table cannot be read or written (unreachable, no such
                               table or column); the message never holds the URL's password

Library code raises these with full context; only the CLI edge turns them into friendly text.
Messages never contain secret values: callers pass values through a ``Redactor`` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from automations.diagnostics import Diagnostic

__all__ = [
    "AmbiguousSendError",
    "AutomationsError",
    "ConfigError",
    "ConnectionPausedError",
    "EventError",
    "LeaseLost",
    "ProviderError",
    "RecipeError",
    "RefusedError",
    "RenderError",
    "SignatureError",
    "StartupError",
    "StoreError",
    "TableDatabaseError",
    "TableFileError",
]


class AutomationsError(Exception):
    """Base of every error raised on purpose by this package."""


class RecipeError(AutomationsError):
    """A recipe failed to load or validate. ``diagnostics`` says where and why."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        first = self.diagnostics[0].format() if self.diagnostics else "invalid recipe"
        more = len(self.diagnostics) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))


class RenderError(AutomationsError):
    """A row could not be turned into a request; nothing was sent.

    ``path`` names the field (e.g. ``to[0]``) whose value was at fault.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class ConfigError(AutomationsError):
    """Configuration is missing or wrong; ``variable`` names the environment variable to set."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        self.variable = variable
        super().__init__(message)


class SignatureError(AutomationsError):
    """An incoming webhook's signature, token or timestamp did not verify."""


class EventError(AutomationsError):
    """An incoming event (a webhook body, a ``--row``) is not JSON the engine can run on: not
    JSON at all, ``NaN`` / ``Infinity`` / a number too large for a float, a lone surrogate,
    nesting deeper than the limit, an integer of more digits than Python converts. Nothing is
    recorded; the webhook intake answers 400 with the message."""


class ProviderError(AutomationsError):
    """A provider answered with an error.

    ``status`` is the HTTP status (``None`` when no response came back), ``vendor_message`` and
    ``vendor_code`` are the provider's own words, ``advice`` says what a person should do, and
    ``retryable`` whether sending again could succeed, ``attempts`` how many times it was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        vendor_message: str | None = None,
        vendor_code: str | None = None,
        advice: str | None = None,
        retryable: bool = False,
        request: Any = None,
        response: Any = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.vendor_message = vendor_message
        self.vendor_code = vendor_code
        self.advice = advice
        self.retryable = retryable
        self.request = request
        self.response = response
        self.attempts = attempts
        super().__init__(message)


class AmbiguousSendError(ProviderError):
    """The request was sent but no answer came back: it may have been delivered.

    A non-idempotent step (a Quo SMS) that ends like this is recorded ``unknown`` and never resent
    automatically.
    """


class RefusedError(AutomationsError):
    """An operator action (replay, resolve, ...) was refused because doing it could send
    something twice or lose a decision; the message says what to do instead. ``run_id`` names
    the run to act on instead, when there is one (the newest run of a replay chain)."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        super().__init__(message)


class ConnectionPausedError(ProviderError):
    """Not sent: the connection is paused by its circuit breaker (``automations/breaker.py``)
    after its key was refused. ``reason`` says why; ``retry_in`` is the number of seconds until
    the next probe (``None`` while one is out). The run waits ``pending``, it is not failed."""

    def __init__(
        self, message: str, *, connection: str, reason: str, retry_in: float | None
    ) -> None:
        super().__init__(message, retryable=True, attempts=0)
        self.connection = connection
        self.reason = reason
        self.retry_in = retry_in


class StoreError(AutomationsError):
    """The run store could not do what was asked (unknown run id, unreadable database, ...)."""


class LeaseLost(AutomationsError):
    """This runner's lease on ``run_id`` is gone (it expired, was rescued, another node claimed
    the run): the run is stopped here, nothing more is sent or written for it, and the node
    that holds it now continues it. Not a ``StoreError``: it is never retried."""

    def __init__(self, run_id: str, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class TableFileError(AutomationsError):
    """A table file may not be read: it resolves outside the allowed directories, is not a
    regular file (a FIFO, a device), or is larger than the limit. The message says what to do."""


class TableDatabaseError(AutomationsError):
    """A database table (``trigger.table.database``) cannot be read or written: the database is
    unreachable, the table, a column or the key is missing, a write-back failed. The message
    names the database as shown (password masked, ``${ENV}`` unexpanded), never a secret."""


class StartupError(AutomationsError):
    """``automations run`` cannot start (its port is taken, its database is locked by another
    runner); it stops before any trigger has read or recorded anything."""
