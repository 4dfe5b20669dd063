"""The dispatcher: lanes, turns, order keys, pages from the store, retries, admission, stop.

Every test drives a ``Dispatcher`` over a ``MemoryStore`` (the inbox) and asserts *which run went
first*, never how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from automations.errors import StoreError
from automations.execution.executor import new_run
from automations.records import RunRecord, RunStatus, TriggerKind
from automations.runner import dispatch
from automations.runner.dispatch import Dispatcher, Outcome
from automations.stores import MemoryStore

LANES = {"loops-a": "loops", "loops-b": "loops", "sms": "quo", "r": "loops"}


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "BACKOFF_S", 0.001)


class Inbox:
    """A MemoryStore as the inbox, and a dispatcher reading it; ``log`` lists the event keys
    in the order their runs started."""

    def __init__(
        self,
        *,
        concurrency: int = 4,
        window: int = 64,
        admit: dispatch.Admit | None = None,
        work: Callable[[RunRecord], object] | None = None,
        gate: Callable[[], object] | None = None,
    ) -> None:
        self.store = MemoryStore()
        self.log: list[str] = []
        self.reads = 0
        self.fail_reads = 0
        self.work = work
        self.peak_in_memory = 0
        self.dispatcher = Dispatcher(
            self.execute,
            self.read,
            lane_of=LANES.get,
            order_key_of=lambda run: run.event.get("key"),
            admit=admit,
            concurrency=concurrency,
            window=window,
            gate=gate,  # type: ignore[arg-type]
        )

    async def read(self, recipe: str, after: str | None, limit: int) -> list[RunRecord]:
        self.reads += 1
        if self.fail_reads:
            self.fail_reads -= 1
            raise StoreError("run store runs.db: disk I/O error")
        return self.store.unfinished_after(recipe, after, limit)

    async def execute(self, run: RunRecord) -> Outcome:
        held = sum(q.in_memory for q in self.dispatcher.queues())
        self.peak_in_memory = max(self.peak_in_memory, held)
        self.log.append(run.event_key)
        outcome = Outcome.DONE
        if self.work is not None:
            result = self.work(run)
            if asyncio.iscoroutine(result):
                result = await result
            if isinstance(result, Outcome):
                outcome = result
        if outcome is Outcome.DONE:
            self.store.update_run(run.id, status=RunStatus.SUCCEEDED)
        return outcome

    def record(self, recipe: str, key: str, order: str | None = None) -> RunRecord:
        """Record a run and tell the dispatcher, as the runner's ``accept_many`` does."""
        run = self.store.enqueue(new_run(recipe, TriggerKind.TABLE, key, {"key": order}))[0]
        self.dispatcher.notify(run, order)
        return run

    def backlog(self, recipe: str, count: int) -> None:
        """Runs recorded while the runner was down: only the store knows them."""
        self.store.enqueue_many(
            [new_run(recipe, TriggerKind.TABLE, f"{recipe}-{i}", {}) for i in range(count)]
        )


def test_runs_of_one_order_key_run_one_at_a_time_in_order() -> None:
    active: dict[str, int] = {}

    async def work(run: RunRecord) -> None:
        k = run.event["key"]
        active[k] = active.get(k, 0) + 1
        assert active[k] == 1, "two runs of one key at once"
        await asyncio.sleep(0.001)
        active[k] -= 1

    async def main() -> list[str]:
        inbox = Inbox(work=work)
        for i in range(5):
            for k in "ab":
                inbox.record("r", f"{k}{i}", order=k)
        await inbox.dispatcher.wait_idle()
        return inbox.log

    log = asyncio.run(main())
    assert [k for k in log if k.startswith("a")] == ["a0", "a1", "a2", "a3", "a4"]
    assert [k for k in log if k.startswith("b")] == ["b0", "b1", "b2", "b3", "b4"]


def test_concurrency_is_bounded_per_lane() -> None:
    now: dict[str, int] = {"loops": 0, "quo": 0}
    peak: dict[str, int] = {"loops": 0, "quo": 0}

    async def work(run: RunRecord) -> None:
        lane = LANES[run.recipe]
        now[lane] += 1
        peak[lane] = max(peak[lane], now[lane])
        await asyncio.sleep(0.002)
        now[lane] -= 1

    async def main() -> None:
        inbox = Inbox(concurrency=3, work=work)
        for i in range(20):
            inbox.record("loops-a", f"l{i}")
            inbox.record("sms", f"s{i}")
        assert await inbox.dispatcher.drain(5.0)

    asyncio.run(main())
    assert peak == {"loops": 3, "quo": 3}


def test_a_blocked_lane_never_delays_another() -> None:
    """Every Loops slot waits (as for a rate limit); a Quo run recorded after 500 Loops runs
    still executes, and does so while the Loops runs are stuck."""
    release = asyncio.Event()
    seen_while_blocked: list[str] = []

    async def work(run: RunRecord) -> None:
        if LANES[run.recipe] == "loops":
            await release.wait()
        else:
            seen_while_blocked.append(run.event_key)
            release.set()

    async def main() -> list[str]:
        inbox = Inbox(concurrency=2, work=work)
        inbox.backlog("loops-a", 500)
        inbox.dispatcher.wake("loops-a")
        await asyncio.sleep(0.01)
        inbox.record("sms", "the-sms")
        await inbox.dispatcher.wait_idle()
        return inbox.log

    log = asyncio.run(main())
    assert seen_while_blocked == ["the-sms"]
    assert log.index("the-sms") == 2  # right after the two Loops runs holding both slots
    assert len(log) == 501


def test_recipes_of_one_lane_take_turns() -> None:
    """One recipe's backlog of 2,000 runs does not starve another recipe's single event: it
    gets the next free slot."""

    async def main() -> list[str]:
        inbox = Inbox(concurrency=1)
        inbox.backlog("loops-a", 2000)
        inbox.dispatcher.wake("loops-a")
        await asyncio.sleep(0.01)
        started = len(inbox.log)
        inbox.record("loops-b", "single")
        await inbox.dispatcher.wait_idle()
        # after the run holding the slot, and at most one more of the recipe whose turn it was
        assert inbox.log.index("single") <= started + 2
        return inbox.log

    log = asyncio.run(main())
    assert len(log) == 2001
    assert [k for k in log if k != "single"] == [f"loops-a-{i}" for i in range(2000)]


def test_the_backlog_is_read_in_pages_and_memory_stays_bounded() -> None:
    async def main() -> Inbox:
        inbox = Inbox(concurrency=2, window=16)
        inbox.backlog("loops-a", 1000)
        inbox.dispatcher.wake("loops-a")
        for i in range(300):  # recorded while the backlog runs: beyond the window, read later
            inbox.record("loops-a", f"new-{i}")
        await inbox.dispatcher.wait_idle()
        return inbox

    inbox = asyncio.run(main())
    assert inbox.peak_in_memory <= 16
    expected = [f"loops-a-{i}" for i in range(1000)] + [f"new-{i}" for i in range(300)]
    assert inbox.log == expected  # each once, in the order recorded
    assert inbox.reads >= 1300 // 16
    assert inbox.store.count(RunStatus.PENDING) == 0


def test_a_deferred_run_is_tried_again_first_and_keeps_its_order_key() -> None:
    tries: dict[str, int] = {}

    def work(run: RunRecord) -> Outcome:
        tries[run.event_key] = tries.get(run.event_key, 0) + 1
        if run.event_key == "k0" and tries["k0"] < 3:
            return Outcome.DEFERRED
        return Outcome.DONE

    async def main() -> list[str]:
        inbox = Inbox(concurrency=1, work=work)
        inbox.record("r", "k0", order="k")
        inbox.record("r", "k1", order="k")
        await inbox.dispatcher.wait_idle()
        return inbox.log

    assert asyncio.run(main()) == ["k0", "k0", "k0", "k1"]


def test_a_store_error_leaves_the_run_to_be_tried_again() -> None:
    failures = [StoreError("run store runs.db: database or disk is full")] * 2

    def work(run: RunRecord) -> None:
        if failures:
            raise failures.pop()

    async def main() -> Inbox:
        inbox = Inbox(work=work)
        inbox.record("r", "x")
        await inbox.dispatcher.wait_idle()
        return inbox

    inbox = asyncio.run(main())
    assert inbox.log == ["x", "x", "x"]
    assert inbox.store.count(RunStatus.SUCCEEDED) == 1


def test_a_store_error_while_reading_the_backlog_is_retried() -> None:
    async def main() -> Inbox:
        inbox = Inbox()
        inbox.backlog("r", 3)
        inbox.fail_reads = 2
        inbox.dispatcher.wake("r")
        await inbox.dispatcher.wait_idle()
        return inbox

    inbox = asyncio.run(main())
    assert inbox.log == ["r-0", "r-1", "r-2"]
    assert inbox.reads == 3


def test_a_lane_not_admitted_starts_nothing_until_it_is() -> None:
    allowed = {"quo": 0}

    def admit(lane: str) -> tuple[int, float | None]:
        return (allowed["quo"], 0.01) if lane == "quo" else (8, None)

    async def main() -> list[str]:
        inbox = Inbox(admit=admit)
        for i in range(3):
            inbox.record("sms", f"s{i}")
        inbox.record("loops-a", "l0")
        await asyncio.sleep(0.05)
        assert inbox.log == ["l0"]
        allowed["quo"] = 1  # a probe: one at a time
        await inbox.dispatcher.wait_idle()
        return inbox.log

    assert asyncio.run(main()) == ["l0", "s0", "s1", "s2"]


def test_a_recipe_not_loaded_waits_in_the_store_until_woken() -> None:
    async def main() -> Inbox:
        inbox = Inbox()
        inbox.record("gone", "g0")
        await asyncio.sleep(0.01)
        assert inbox.log == []
        LANES["gone"] = "http"
        try:
            inbox.dispatcher.wake("gone")
            await inbox.dispatcher.wait_idle()
        finally:
            del LANES["gone"]
        return inbox

    assert asyncio.run(main()).log == ["g0"]


def test_duplicate_notify_and_closed() -> None:
    async def main() -> Inbox:
        inbox = Inbox()
        run = inbox.record("r", "x")
        inbox.dispatcher.notify(run, None)
        assert await inbox.dispatcher.drain(1.0)
        inbox.record("r", "y")  # closed: stays pending in the store
        return inbox

    inbox = asyncio.run(main())
    assert inbox.log == ["x"]
    assert inbox.store.count(RunStatus.PENDING) == 1


def test_drain_cancels_what_does_not_finish() -> None:
    async def work(run: RunRecord) -> None:
        await asyncio.sleep(10)

    async def main() -> bool:
        inbox = Inbox(work=work)
        inbox.record("r", "slow")
        await asyncio.sleep(0)
        return await inbox.dispatcher.drain(0.05)

    assert asyncio.run(main()) is False


def test_drain_leaves_queued_runs_for_the_next_start() -> None:
    async def work(run: RunRecord) -> None:
        await asyncio.sleep(0.01)

    async def main() -> Inbox:
        inbox = Inbox(work=work)
        inbox.record("r", "k0", order="k")
        inbox.record("r", "k1", order="k")
        await asyncio.sleep(0)
        assert await inbox.dispatcher.drain(1.0, finish_queued=False)
        assert inbox.dispatcher.in_flight == 0
        return inbox

    inbox = asyncio.run(main())
    assert inbox.log == ["k0"]
    assert [r.event_key for r in inbox.store.unfinished()] == ["k1"]


def test_a_failing_run_does_not_stop_its_chain() -> None:
    def work(run: RunRecord) -> None:
        if run.event_key == "k0":
            raise RuntimeError("bug")

    async def main() -> list[str]:
        inbox = Inbox(work=work)
        inbox.record("r", "k0", order="k")
        inbox.record("r", "k1", order="k")
        await asyncio.sleep(0.05)
        return inbox.log

    assert asyncio.run(main()) == ["k0", "k1"]


def test_the_gate_is_awaited_before_each_run() -> None:
    order: list[str] = []

    async def gate() -> None:
        order.append("gate")

    def work(run: RunRecord) -> None:
        order.append(run.event_key)

    async def main() -> None:
        inbox = Inbox(work=work, gate=gate)
        inbox.record("r", "a", order="k")
        inbox.record("r", "b", order="k")
        await inbox.dispatcher.wait_idle()

    asyncio.run(main())
    assert order == ["gate", "a", "gate", "b"]


def test_the_views_say_what_waits_where() -> None:
    release = asyncio.Event()

    async def work(run: RunRecord) -> None:
        await release.wait()

    async def main() -> None:
        inbox = Inbox(concurrency=1, window=4, work=work)
        inbox.backlog("loops-a", 10)
        inbox.dispatcher.wake("loops-a")
        await asyncio.sleep(0.01)
        (lane,) = inbox.dispatcher.lanes()
        assert (lane.lane, lane.running, lane.queued, lane.recipes) == (
            "loops",
            1,
            3,
            ("loops-a",),
        )
        (queue,) = inbox.dispatcher.queues()
        assert (queue.recipe, queue.lane, queue.in_memory, queue.more_in_store) == (
            "loops-a",
            "loops",
            4,
            True,
        )
        release.set()
        await inbox.dispatcher.wait_idle()
        assert inbox.dispatcher.queues() == []

    asyncio.run(main())


def test_intake_pressure_never_blocks_for_long() -> None:
    from automations.runner.inbox import IntakePressure

    async def main() -> None:
        pressure = IntakePressure(quiet_s=0.001, max_wait_s=0.01)
        await pressure.wait()  # quiet: returns at once
        for _ in range(3):
            pressure.note()  # a burst keeps arriving: returns at max_wait_s at the latest
            await asyncio.wait_for(pressure.wait(), timeout=5)

    asyncio.run(main())


# -- runs claimed as they are recorded (take, room) and let go when their lane pauses ------------


def _recorded(
    box: Inbox, recipe: str, keys: list[str], order: str | None = None
) -> list[RunRecord]:
    runs = [new_run(recipe, TriggerKind.WEBHOOK, k, {"key": order} if order else {}) for k in keys]
    box.store.enqueue_many(runs)
    return runs


def test_room_says_how_many_runs_may_be_handed_over_now() -> None:
    paused: set[str] = set()

    def admit(lane: str) -> tuple[int, float | None]:
        return (0 if lane in paused else 4), None

    async def go() -> None:
        box = Inbox(window=4, admit=admit, work=lambda run: asyncio.sleep(3600))
        d = box.dispatcher
        assert d.room("loops-a") == 4
        assert d.room("not-loaded") == 0
        runs = _recorded(box, "loops-a", ["e0", "e1", "e2"])
        assert d.take([(r, None) for r in runs]) == []
        await asyncio.sleep(0.01)
        assert d.room("loops-a") == 1
        paused.add("loops")
        assert d.room("loops-a") == 0  # its connection is paused: its runs wait in the store
        d.close(finish_queued=False)
        [late] = _recorded(box, "sms", ["late"])
        assert d.take([(late, None)]) == [late]  # closed: the caller gives it back
        await d.drain(0.1, finish_queued=False)

    asyncio.run(go())


def test_runs_taken_past_the_window_are_all_executed_in_order() -> None:
    async def go() -> list[str]:
        box = Inbox(concurrency=1, window=2)
        runs = _recorded(box, "loops-a", [f"e{i}" for i in range(5)])
        assert box.dispatcher.take([(r, None) for r in runs]) == []
        await asyncio.wait_for(box.dispatcher.wait_idle(), 10)
        return box.log

    assert asyncio.run(go()) == ["e0", "e1", "e2", "e3", "e4"]


def test_let_go_forgets_the_waiting_runs_of_a_lane_but_not_those_executing() -> None:
    async def go() -> tuple[list[str], list[str], list[str]]:
        gate = asyncio.Event()
        box = Inbox(concurrency=1, work=lambda run: gate.wait())
        d = box.dispatcher
        loops = _recorded(box, "loops-a", ["l0", "l1", "l2"], order="k")
        sms = _recorded(box, "sms", ["s0"])
        d.take([(r, "k") for r in loops] + [(r, None) for r in sms])
        await asyncio.sleep(0.01)  # l0 and s0 execute; l1, l2 wait (behind l0's key)
        dropped = [r.event_key for r in d.let_go("loops")]
        started = list(box.log)
        gate.set()
        await asyncio.wait_for(d.wait_idle(), 10)
        return dropped, started, box.log

    dropped, started, log = asyncio.run(go())
    assert dropped == ["l1", "l2"]
    assert started == ["l0", "s0"]
    # the dropped runs wait in the store; read back in their turn, each runs once, in order
    assert sorted(log) == ["l0", "l1", "l2", "s0"]
    assert [k for k in log if k.startswith("l")] == ["l0", "l1", "l2"]
