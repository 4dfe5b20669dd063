"""``Connections`` over an ``httpx.MockTransport`` on virtual time: the setup every send test
needs, in one place."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx

from automations.connections import Connections, ConnectionSettings
from tests.fakes import VirtualClock

__all__ = ["with_connections"]

T = TypeVar("T")


def with_connections(
    handler: Callable[[httpx.Request], httpx.Response],
    use: Callable[[Connections], Awaitable[T]],
    env: dict[str, str],
    *,
    clock: VirtualClock | None = None,
    now: Callable[[], datetime] | None = None,
    rng: random.Random | None = None,
) -> T:
    """Run ``use(connections)`` with every request answered by ``handler``; sleeps move
    ``clock`` (a new ``VirtualClock`` if none) instead of waiting."""
    clock = clock or VirtualClock()
    extra: dict[str, Any] = {} if now is None else {"now": now}

    async def main() -> T:
        async with Connections(
            ConnectionSettings.from_env(env),
            transport=httpx.MockTransport(handler),
            clock=clock,
            sleep=clock.sleep,
            rng=rng,
            **extra,
        ) as connections:
            return await use(connections)

    return asyncio.run(main())
