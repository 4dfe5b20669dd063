"""Pacing shared by several nodes (``SharedRateLimiter`` over a ``RateGate``), on virtual time:
slots taken in turn, holds that reach every node, late slots given up, and no send at all
while the gate cannot be reached."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest

from automations.actions import ACTIONS
from automations.connections import Connections, ConnectionSettings, Pacing
from automations.connections.pacing import SharedRateLimiter
from automations.errors import ProviderError, StoreError
from automations.outbound import Connection
from automations.ports import RateGate
from automations.ratelimit import RateLimiter
from automations.retry import RetryPolicy
from automations.stores.rate_gate import MemoryRateGate
from tests.fakes import VirtualClock
from tests.fakes.quo import QuoFake

T = TypeVar("T")
KEY = "quo:test"


async def direct(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


def node(gate: RateGate, clock: VirtualClock, **kw: Any) -> SharedRateLimiter:
    return SharedRateLimiter(
        KEY, gate, direct, 10, 1.0, guard=0.01, clock=clock, sleep=clock.sleep, **kw
    )


def test_nodes_take_the_keys_slots_in_turn() -> None:
    clock = VirtualClock(start=100.0)
    gate = MemoryRateGate(clock=clock)
    a, b, c = node(gate, clock), node(gate, clock), node(gate, clock)

    async def main() -> list[float]:
        times = []
        for limiter in [a, b, c] * 5:
            times.append((await limiter.acquire()).at)
        return times

    times = asyncio.run(main())
    assert [round(y - x, 6) for x, y in itertools.pairwise(times)] == [0.101] * 14
    assert (a.released, b.released, c.released) == (5, 5, 5)
    assert min(y - x for x, y in zip(times, times[10:], strict=False)) == pytest.approx(1.01)


def test_a_hold_on_one_node_holds_every_node() -> None:
    clock = VirtualClock(start=100.0)
    gate = MemoryRateGate(clock=clock)
    a, b = node(gate, clock), node(gate, clock)

    async def main() -> float:
        await a.acquire()
        a.hold(5.0)  # a 429 with Retry-After: 5 answered a's request
        await asyncio.sleep(0)  # the hold reaches the gate in the background
        return (await b.acquire()).at

    assert asyncio.run(main()) == pytest.approx(105.0)


def late_by(clock: VirtualClock, lateness: list[float]) -> Callable[[float], Any]:
    late = iter(lateness)

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds + next(late, 0.0))

    return sleep


def test_a_late_slot_keeps_the_window_from_when_it_really_went() -> None:
    clock = VirtualClock(start=100.0)
    gate = MemoryRateGate(clock=clock)
    # the first sleep (the second slot's) wakes 30 ms late, more than guard / 2
    limiter = SharedRateLimiter(
        KEY, gate, direct, 10, 1.0, guard=0.01, clock=clock, sleep=late_by(clock, [0.03])
    )

    async def main() -> list[float]:
        times = []
        for _ in range(13):
            times.append((await limiter.acquire()).at)
            await asyncio.sleep(0)  # the report reaches the gate in the background
        return times

    times = asyncio.run(main())
    assert limiter.reported_late == 1
    assert limiter.given_up == 0
    assert round(times[1] - 100.101, 6) == 0.03
    # the slot ten places after the late one keeps 1.01 s from when it really went
    assert round(times[11] - times[1], 6) == 1.01
    assert min(y - x for x, y in zip(times, times[10:], strict=False)) >= 1.01 - 1e-9


def test_a_request_held_up_on_the_way_out_reports_it_too() -> None:
    clock = VirtualClock(start=100.0)
    gate = MemoryRateGate(clock=clock)
    limiter = node(gate, clock)

    async def main() -> list[float]:
        first = await limiter.acquire()
        clock.now += 0.2  # a TLS handshake before the request went out
        first.sent()
        await asyncio.sleep(0)
        times = [first.at]
        for _ in range(10):
            times.append((await limiter.acquire()).at)
        return times

    times = asyncio.run(main())
    assert limiter.reported_late == 1
    assert round(times[0], 6) == 100.2
    assert round(times[10] - times[0], 6) == 1.01


def test_a_slot_missed_by_more_than_half_a_second_is_given_up() -> None:
    clock = VirtualClock(start=100.0)
    gate = MemoryRateGate(clock=clock)
    limiter = SharedRateLimiter(
        KEY, gate, direct, 10, 1.0, guard=0.01, clock=clock, sleep=late_by(clock, [0.6])
    )

    async def main() -> list[float]:
        return [(await limiter.acquire()).at for _ in range(3)]

    times = asyncio.run(main())
    assert limiter.given_up == 1
    # the second slot (100.101) was missed by 0.6 s: the next free one went instead
    assert [round(t, 6) for t in times] == [100.0, 100.701, 100.802]


class DownGate(RateGate):
    def __init__(self) -> None:
        self.down = True
        self.calls = 0
        self.memory = MemoryRateGate()

    def reserve(
        self, key: str, interval_s: float, count: int, *, now: float | None = None
    ) -> tuple[float, int]:
        self.calls += 1
        if self.down:
            raise StoreError("run store postgresql://db/x: connection refused")
        return self.memory.reserve(key, interval_s, count, now=now)

    def report_late(self, key: str, number: int, late_s: float) -> None:
        raise StoreError("run store postgresql://db/x: connection refused")

    def hold(self, key: str, seconds: float, *, now: float | None = None) -> None:
        raise StoreError("run store postgresql://db/x: connection refused")


def test_an_unreachable_gate_releases_nothing_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="automations.connections")
    clock = VirtualClock(start=100.0)
    gate = DownGate()
    limiter = node(gate, clock, name="Quo")

    async def main() -> list[str]:
        errors = []
        for _ in range(2):
            try:
                await limiter.acquire()
            except StoreError as exc:
                errors.append(str(exc))
        gate.down = False
        await limiter.acquire()
        return errors

    errors = asyncio.run(main())
    assert (
        errors
        == [
            "Quo: the shared rate limit cannot be reached, nothing was sent "
            "(run store postgresql://db/x: connection refused)"
        ]
        * 2
    )
    assert limiter.released == 1
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Quo: the shared rate limit cannot be reached (run store postgresql://db/x: connection "
        "refused); nothing is sent with this key until it answers, and the runs waiting for it "
        "are tried again",
        "Quo: the shared rate limit answers again; sending resumes",
    ]


def test_a_send_with_the_gate_down_sends_nothing() -> None:
    fake = QuoFake()
    gate = DownGate()
    req = ACTIONS["quo.send_sms"].build(
        {"to": ["+15555550100"], "from": "PN1", "content": "Hi"},
        run_id="r1",
        step_index=0,
        phone_region="US",
    )
    marks: list[str] = []

    async def main() -> None:
        async with Connections(
            ConnectionSettings.from_env({"QUO_API_KEY": "quo-secret-key"}),
            transport=httpx.MockTransport(fake.handler),
            pacing=Pacing(gate),
        ) as conns:
            await conns.send(req, RetryPolicy(), on_sending=lambda: marks.append("sending"))

    with pytest.raises(StoreError, match="nothing was sent"):
        asyncio.run(main())
    assert len(fake.received) == 0
    assert marks == []  # not even marked "sending"


def test_without_a_gate_each_process_paces_alone() -> None:
    local = Connections(ConnectionSettings.from_env({"QUO_API_KEY": "k"}))
    assert isinstance(local.limiter_for(Connection.QUO), RateLimiter)
    shared = Connections(
        ConnectionSettings.from_env({"QUO_API_KEY": "k"}), pacing=Pacing(MemoryRateGate())
    )
    limiter = shared.limiter_for(Connection.QUO)
    assert isinstance(limiter, SharedRateLimiter)
    assert limiter.name == "Quo"


def shared_key(env: dict[str, str]) -> str:
    conns = Connections(ConnectionSettings.from_env(env), pacing=Pacing(MemoryRateGate()))
    limiter = conns.limiter_for(Connection.QUO)
    assert isinstance(limiter, SharedRateLimiter)
    return limiter.key


def test_a_keys_row_is_named_by_a_hash_of_the_key_and_its_host() -> None:
    key = shared_key({"QUO_API_KEY": "quo-secret-key"})
    assert key.startswith("quo:") and len(key) == len("quo:") + 24
    assert "secret" not in key
    assert shared_key({"QUO_API_KEY": "quo-secret-key"}) == key
    assert shared_key({"QUO_API_KEY": "another-key"}) != key
    sandbox = {"QUO_API_KEY": "quo-secret-key", "QUO_BASE_URL": "http://127.0.0.1:9"}
    assert shared_key(sandbox) != key


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "3"},
        {"ratelimit": '"default";r=0;t=3'},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"},
    ],
    ids=["retry-after", "quo-ratelimit", "loops-x-ratelimit"],
)
def test_a_providers_signal_at_one_node_holds_every_node(headers: dict[str, str]) -> None:
    clock = VirtualClock(start=1000.0)
    gate = MemoryRateGate(clock=clock)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers=headers, json={"message": "slow down"})

    req = ACTIONS["quo.send_sms"].build(
        {"to": ["+15555550100"], "from": "PN1", "content": "Hi"},
        run_id="r1",
        step_index=0,
        phone_region="US",
    )

    async def main() -> float:
        async with Connections(
            ConnectionSettings.from_env({"QUO_API_KEY": "k"}),
            transport=httpx.MockTransport(handler),
            clock=clock,
            sleep=clock.sleep,
            pacing=Pacing(gate),
        ) as conns:
            with pytest.raises(ProviderError):
                await conns.send(req, RetryPolicy(max_attempts=1))
            limiter = conns.limiter_for(Connection.QUO)
            assert isinstance(limiter, SharedRateLimiter)
            for _ in range(100):  # the hold reaches the gate on the pacing's thread
                await asyncio.sleep(0.01)
            other = SharedRateLimiter(
                limiter.key, gate, direct, 10, 1.0, guard=0.01, clock=clock, sleep=clock.sleep
            )
            return (await other.acquire()).at

    # the other node's next slot is 3 s after the 429 (sent at 1000.0)
    assert asyncio.run(main()) == pytest.approx(1003.0)
