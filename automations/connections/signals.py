"""The vendors' own pacing signals: how long a whole connection should hold its requests.

Read from every answer (a success as well as a 429), in this order:

- ``Retry-After`` (seconds or an HTTP date), on any answer that carries it;
- Quo's ``ratelimit`` header (the IETF RateLimit fields: ``"default";r=0;t=1``): when ``r`` (the
  requests remaining) is 0, or the answer is a 429, hold for ``t`` seconds (until the window
  resets);
- Loops' ``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset`` (seconds until the reset, or a
  unix time when it is that large), or a 429 with ``x-ratelimit-reset``.

The connection's rate limiter then releases no request of that key until the hold ends
(``RateLimiter.hold``): the requests already queued wait too, instead of each running into its
own 429. A hold is capped (``MAX_HOLD_S``) so a garbled header cannot stop a connection for long.
"""

from __future__ import annotations

import re
from datetime import datetime

import httpx

from automations.retry import parse_retry_after

__all__ = ["MAX_HOLD_S", "hold_for"]

#: The longest hold a single answer can ask for, seconds.
MAX_HOLD_S = 300.0
#: A reset value this large is a unix time, not a number of seconds.
_EPOCH = 1_000_000_000
_PARAM = re.compile(r";\s*([a-z]+)\s*=\s*([0-9.]+)", re.I)


def hold_for(response: httpx.Response, *, now: datetime, unix_now: float) -> float | None:
    """Seconds the connection should hold its requests after ``response``; ``None`` when the
    answer asks for nothing."""
    headers = response.headers
    limited = response.status_code == 429
    hold = parse_retry_after(headers.get("retry-after"), now=now)
    quo = headers.get("ratelimit")
    if hold is None and quo is not None:
        params = {k.lower(): v for k, v in _PARAM.findall(quo)}
        remaining, reset = _number(params.get("r")), _number(params.get("t"))
        if reset is not None and (limited or remaining == 0):
            hold = reset
    loops_reset = _number(headers.get("x-ratelimit-reset"))
    if hold is None and loops_reset is not None:
        remaining = _number(headers.get("x-ratelimit-remaining"))
        if limited or remaining == 0:
            hold = loops_reset - unix_now if loops_reset >= _EPOCH else loops_reset
    if hold is None:
        return None
    return min(MAX_HOLD_S, max(0.0, hold))


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value else None  # NaN reads as nothing
