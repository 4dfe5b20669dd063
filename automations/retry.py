"""When to try a request again, and how long to wait first.

``RetryPolicy`` is a value: the attempt cap, the backoff curve and the total-time budget.
``Connections.send`` asks it for each delay. The curve is exponential with *decorrelated jitter*
(each delay drawn between ``base_delay`` and three times the previous one, capped at
``max_delay``): concurrent clients that failed together spread out instead of retrying in
lockstep, and no delay is shorter than ``base_delay``. Without jitter the delays are
``base_delay * 2 ** (n - 1)``, capped.

A ``Retry-After`` header, when the provider sends one, wins over the curve (Quo and Loops
document none, but gateways in front of them may add it).

The default budget rides out a provider outage: 15 minutes (``AUTOMATIONS_RETRY_BUDGET``, read by
``RetryPolicy.from_env``) with delays capped at 30 s, so a request safe to retry that meets an
outage of up to ~14 minutes still succeeds (its last try starts at most 30 s before the budget
ends). Which failures are retried at all is ``Connections.send``'s decision (what proves a request
was not processed); the policy only says how long and how often.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from automations.errors import ConfigError

__all__ = ["BUDGET_VARIABLE", "RetryPolicy", "parse_budget", "parse_retry_after"]

#: The environment variable that sets ``RetryPolicy.max_total`` (seconds, or ``90s``, ``15m``,
#: ``1h``).
BUDGET_VARIABLE = "AUTOMATIONS_RETRY_BUDGET"
#: The default total budget: long enough to ride out a 10-minute outage.
DEFAULT_BUDGET_S = 900.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times, and for how long, a retryable failure is tried again.

    ``max_attempts`` counts every attempt including the first. ``max_total`` (seconds) bounds the
    time from the first attempt to the start of the last one: a delay that would cross it ends
    the retries instead.
    """

    #: Attempts are bounded by the time budget first; this cap only stops a tight loop (a
    #: ``Retry-After: 0`` answered forever).
    max_attempts: int = 200
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total: float = DEFAULT_BUDGET_S
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < self.base_delay or self.max_total < 0:
            raise ValueError(
                "need 0 <= base_delay <= max_delay and max_total >= 0, got "
                f"base_delay={self.base_delay} max_delay={self.max_delay} "
                f"max_total={self.max_total}"
            )

    def backoff(
        self,
        attempt: int,
        previous: float | None = None,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``previous`` is the delay used before this one (``None`` after the first attempt); with
        jitter the next delay is drawn from ``[base_delay, 3 * previous]``. ``retry_after``, the
        provider's own figure, is used as is when given.
        """
        if retry_after is not None:
            return max(0.0, retry_after)
        if not self.jitter:
            return float(min(self.max_delay, self.base_delay * 2 ** max(0, attempt - 1)))
        draw = (rng or _RNG).uniform
        upper = 3 * (previous if previous is not None else self.base_delay)
        return min(self.max_delay, draw(self.base_delay, max(self.base_delay, upper)))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        """The default policy with the budget from ``AUTOMATIONS_RETRY_BUDGET`` when set.

        Raises ``ConfigError`` naming the variable for a value that is not a duration.
        """
        raw = env.get(BUDGET_VARIABLE)
        if raw is None or not raw.strip():
            return cls()
        return cls(max_total=parse_budget(raw))

    @classmethod
    def no_retry(cls) -> RetryPolicy:
        """One attempt only (dry runs, ``automations exec --no-retry``)."""
        return cls(max_attempts=1)


_RNG = random.Random()
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: str) -> float:
    """``900``, ``90s``, ``15m`` or ``1h`` as seconds (``0``: no retries at all).

    Raises ``ConfigError`` naming ``AUTOMATIONS_RETRY_BUDGET`` for anything else.
    """
    value = text.strip().lower()
    scale = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if scale is not None else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        seconds = float("nan")
    if not (seconds >= 0 and seconds != float("inf")):
        raise ConfigError(
            f"{BUDGET_VARIABLE}={text!r} is not a duration: write seconds (900) or 90s, 15m, 1h",
            variable=BUDGET_VARIABLE,
        )
    return seconds


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds from ``now``: delta-seconds or an HTTP date.

    Returns ``None`` when the header is absent or unreadable (the backoff curve applies then),
    and ``0.0`` for a date already past.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" zone: RFC 9110 dates are UTC
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
