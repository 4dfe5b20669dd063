"""The circuit breaker of a provider connection: stop sending with a key that is refused.

A wrong or revoked API key makes every request fail the same way; sending the whole backlog to
learn that again, run by run, fails every run. One ``Breaker`` per API key watches the answers:

    closed ──(3 consecutive 401s, or a Quo 402)──> open ──(a minute later)──> probing
      ^                                              ^                          │
      └──────────────(the probe succeeds)───────────-┼──────────────────────────┤
                                                     └──(the probe is refused)──┘

- **closed**: requests go out; a success resets the count of authentication failures.
- **open** (paused): no request goes out (``admit`` raises ``ConnectionPausedError``, nothing
  sent); runs stay ``pending``. The pause is logged once, shown in ``/healthz``.
- **probing**: once every ``probe_every_s`` one request is let through. Its success closes the
  breaker (the backlog resumes); another 401/402 opens it for another interval; any other end
  (an error that says nothing about the key) also waits for the next interval.

A 401 or a Quo 402 proves that the provider did not act on the request, so the run that got it
is not failed: it goes back to ``pending`` and is sent again after the breaker closes.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from automations.errors import ConnectionPausedError
from automations.outbound import Connection

__all__ = ["AUTH_FAILURES", "Breaker", "BreakerState", "BreakerView", "refuses_key"]

log = logging.getLogger("automations.runner")

#: Authentication failures in a row that pause a connection.
AUTH_FAILURES = 3
#: Seconds between two probes of a paused connection.
PROBE_EVERY_S = 60.0


def refuses_key(connection: Connection, status: int | None) -> bool:
    """Whether ``status`` says the connection's key (or account) is refused as a whole: 401 for
    Quo and Loops, and Quo's 402 (no prepaid credits). ``http.request`` has no shared key."""
    if connection is Connection.HTTP or status is None:
        return False
    return status == 401 or (status == 402 and connection is Connection.QUO)


class BreakerState(enum.Enum):
    """Whether a connection sends."""

    #: Requests go out.
    CLOSED = "closed"
    #: Paused: nothing goes out until the next probe.
    OPEN = "open"
    #: Paused, with one request out to learn whether the key works again.
    PROBING = "probing"


@dataclass(frozen=True, slots=True)
class BreakerView:
    """What ``/healthz`` and the ``status`` command show of a breaker."""

    connection: str
    state: BreakerState
    #: Why it is paused (``None`` when closed).
    reason: str | None
    #: When it paused (unix seconds), and when it probes next (monotonic seconds from now).
    paused_at: float | None
    probe_in_s: float | None
    #: Authentication failures in a row so far.
    failures: int


class Breaker:
    """The breaker of one API key. ``clock`` is monotonic (probe timing), ``wall`` gives the
    unix time shown for ``paused_at``; ``on_change`` is called after every change of state."""

    def __init__(
        self,
        connection: Connection,
        *,
        threshold: int = AUTH_FAILURES,
        probe_every_s: float = PROBE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_change: Callable[[Breaker], None] | None = None,
    ) -> None:
        self.connection = connection
        self.threshold = threshold
        self.probe_every_s = probe_every_s
        self._clock = clock
        self._wall = wall
        self.on_change = on_change
        self.state = BreakerState.CLOSED
        self.reason: str | None = None
        self.paused_at: float | None = None
        self.failures = 0
        self._probe_at = 0.0

    @property
    def paused(self) -> bool:
        return self.state is not BreakerState.CLOSED

    def probe_in(self) -> float | None:
        """Seconds until a probe may go out (0: now); ``None`` when closed or probing."""
        if self.state is not BreakerState.OPEN:
            return None
        return max(0.0, self._probe_at - self._clock())

    def admit(self) -> bool:
        """Called before a request leaves: ``False`` for a normal request, ``True`` when this
        one is the probe of a paused connection; raises ``ConnectionPausedError`` (nothing is
        sent) while paused and no probe is due."""
        if self.state is BreakerState.CLOSED:
            return False
        wait = self.probe_in()
        if wait is not None and wait <= 0:
            self.state = BreakerState.PROBING
            return True
        raise ConnectionPausedError(
            f"the {self.connection.value} connection is paused: {self.reason}",
            connection=self.connection.value,
            reason=self.reason or "",
            retry_in=wait,
        )

    def succeeded(self, probe: bool) -> None:
        """The provider accepted a request: the key works."""
        self.failures = 0
        if self.state is not BreakerState.CLOSED and (probe or self.state is BreakerState.OPEN):
            log.warning(
                "%s connection resumed: a request was accepted again", self.connection.value
            )
            self.state = BreakerState.CLOSED
            self.reason = None
            self.paused_at = None
            self._changed()

    def refused(self, status: int, reason: str, probe: bool) -> None:
        """The provider refused the key (``refuses_key``): count it, pause at the threshold."""
        self.failures += 1
        if self.state is BreakerState.CLOSED:
            if status == 401 and self.failures < self.threshold:
                return
            self.paused_at = self._wall()
            self.reason = reason
            log.error(
                "%s connection paused: %s; its runs stay pending, and one request a minute "
                "tests whether it works again",
                self.connection.value,
                reason,
            )
        elif probe:
            self.reason = reason
        else:
            return  # a request that left before the pause: the pause stands as it is
        self.state = BreakerState.OPEN
        self._probe_at = self._clock() + self.probe_every_s
        self._changed()

    def probe_ended(self, probe: bool) -> None:
        """A request ended; if it was the probe and said nothing about the key (a network
        error, a 5xx), the connection stays paused until the next interval."""
        if probe and self.state is BreakerState.PROBING:
            self.state = BreakerState.OPEN
            self._probe_at = self._clock() + self.probe_every_s
            self._changed()

    def view(self) -> BreakerView:
        return BreakerView(
            self.connection.value,
            self.state,
            self.reason,
            self.paused_at,
            self.probe_in(),
            self.failures,
        )

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)
