"""The dispatcher: bounded concurrency, one-at-a-time per order key, drain on stop."""

from __future__ import annotations

import asyncio

from automations.execution.executor import new_run
from automations.records import RunRecord, TriggerKind
from automations.runner.dispatch import Dispatcher


def _run(key: str) -> RunRecord:
    return new_run("r", TriggerKind.TABLE, key, {})


def test_same_key_runs_in_order_one_at_a_time() -> None:
    log: list[tuple[str, str]] = []
    active: dict[str, int] = {}

    async def execute(run: RunRecord) -> None:
        k = run.event_key[0]
        active[k] = active.get(k, 0) + 1
        assert active[k] == 1, "two runs of one key at once"
        log.append(("start", run.event_key))
        await asyncio.sleep(0.001)
        active[k] -= 1

    async def main() -> None:
        d = Dispatcher(execute, concurrency=4)
        runs = [_run(f"{k}{i}") for i in range(5) for k in "ab"]
        for r in runs:
            assert d.submit(r, order_key=r.event_key[0])
        await d.wait_idle()

    asyncio.run(main())
    assert [k for _, k in log if k.startswith("a")] == ["a0", "a1", "a2", "a3", "a4"]
    assert [k for _, k in log if k.startswith("b")] == ["b0", "b1", "b2", "b3", "b4"]


def test_concurrency_is_bounded() -> None:
    peak = 0
    now = 0

    async def execute(run: RunRecord) -> None:
        nonlocal peak, now
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.002)
        now -= 1

    async def main() -> None:
        d = Dispatcher(execute, concurrency=3)
        for i in range(20):
            d.submit(_run(str(i)))
        assert await d.drain(5.0)

    asyncio.run(main())
    assert peak == 3


def test_duplicate_submit_and_closed() -> None:
    seen: list[str] = []

    async def execute(run: RunRecord) -> None:
        seen.append(run.id)

    async def main() -> None:
        d = Dispatcher(execute)
        r = _run("x")
        assert d.submit(r)
        assert not d.submit(r)
        assert await d.drain(1.0)
        assert not d.submit(_run("y"))

    asyncio.run(main())
    assert len(seen) == 1


def test_drain_cancels_what_does_not_finish() -> None:
    async def execute(run: RunRecord) -> None:
        await asyncio.sleep(10)

    async def main() -> bool:
        d = Dispatcher(execute)
        d.submit(_run("slow"))
        await asyncio.sleep(0)
        return await d.drain(0.05)

    assert asyncio.run(main()) is False


def test_drain_leaves_queued_runs_for_the_next_start() -> None:
    done: list[str] = []

    async def execute(run: RunRecord) -> None:
        await asyncio.sleep(0.01)
        done.append(run.event_key)

    async def main() -> None:
        d = Dispatcher(execute)
        d.submit(_run("k0"), "k")
        d.submit(_run("k1"), "k")
        await asyncio.sleep(0)
        assert await d.drain(1.0)
        assert d.in_flight == 0

    asyncio.run(main())
    assert done == ["k0"]


def test_a_failing_run_does_not_stop_its_chain(caplog: object) -> None:
    done: list[str] = []

    async def execute(run: RunRecord) -> None:
        if run.event_key == "k0":
            raise RuntimeError("bug")
        done.append(run.event_key)

    async def main() -> None:
        d = Dispatcher(execute)
        d.submit(_run("k0"), "k")
        d.submit(_run("k1"), "k")
        await d.wait_idle()

    asyncio.run(main())
    assert done == ["k1"]


def test_the_gate_is_awaited_before_each_run() -> None:
    order: list[str] = []

    async def gate() -> None:
        order.append("gate")

    async def execute(run: RunRecord) -> None:
        order.append(run.event_key)

    async def main() -> None:
        d = Dispatcher(execute, gate=gate)
        d.submit(_run("a"), "k")
        d.submit(_run("b"), "k")
        await d.wait_idle()

    asyncio.run(main())
    assert order == ["gate", "a", "gate", "b"]


def test_intake_pressure_never_blocks_for_long() -> None:
    from automations.runner.inbox import IntakePressure

    async def main() -> None:
        pressure = IntakePressure(quiet_s=0.001, max_wait_s=0.01)
        await pressure.wait()  # quiet: returns at once
        for _ in range(3):
            pressure.note()  # a burst keeps arriving: returns at max_wait_s at the latest
            await asyncio.wait_for(pressure.wait(), timeout=5)

    asyncio.run(main())
