"""Group commit: webhooks accepted in one turn of the event loop share one commit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from automations.errors import StoreError
from automations.execution.executor import new_run
from automations.records import RunRecord, TriggerKind
from automations.runner.inbox import GroupCommit
from automations.stores import MemoryStore

Items = Sequence[tuple[RunRecord, str | None]]


class Recorder:
    """``accept_many`` over a MemoryStore, remembering each batch it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.store = MemoryStore()
        self.batches: list[list[str]] = []
        self.fail = fail

    def accept_many(self, items: Items) -> list[tuple[RunRecord, bool]]:
        self.batches.append([run.event_key for run, _ in items])
        if self.fail:
            raise StoreError("run store runs.db: database is locked")
        return self.store.enqueue_many([run for run, _ in items])


def run_(key: str) -> RunRecord:
    return new_run("signup", TriggerKind.WEBHOOK, key, {"k": key})


def test_requests_of_one_turn_share_one_commit_and_get_their_own_answer() -> None:
    recorder = Recorder()
    inbox = GroupCommit(recorder.accept_many)

    async def go() -> list[tuple[RunRecord, bool]]:
        together = await asyncio.gather(*(inbox.accept(run_(k), None) for k in ("a", "b", "a")))
        later = await inbox.accept(run_("c"), None)
        return [*together, later]

    results = asyncio.run(go())
    assert recorder.batches == [["a", "b", "a"], ["c"]]
    assert [(run.event_key, new) for run, new in results] == [
        ("a", True),
        ("b", True),
        ("a", False),
        ("c", True),
    ]
    assert results[2][0].id == results[0][0].id  # the duplicate names the first delivery's run


def test_a_failed_commit_fails_every_request_of_its_batch() -> None:
    inbox = GroupCommit(Recorder(fail=True).accept_many)

    async def go() -> list[BaseException | tuple[RunRecord, bool]]:
        return await asyncio.gather(
            *(inbox.accept(run_(k), None) for k in ("a", "b")), return_exceptions=True
        )

    results = asyncio.run(go())
    assert [type(r) for r in results] == [StoreError, StoreError]


def test_a_request_given_up_still_has_its_run_recorded() -> None:
    recorder = Recorder()
    inbox = GroupCommit(recorder.accept_many)

    async def go() -> tuple[RunRecord, bool]:
        gone = asyncio.ensure_future(inbox.accept(run_("a"), None))
        stays = asyncio.ensure_future(inbox.accept(run_("b"), None))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await stays

    run, new = asyncio.run(go())
    assert (run.event_key, new) == ("b", True)
    assert recorder.batches == [["a", "b"]]
    assert recorder.store.find_run("signup", "a") is not None
