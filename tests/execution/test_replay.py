"""Replay and resolve as functions (what the CLI and a console call), over a real SQLite file."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from automations.errors import RefusedError
from automations.execution.replay import replay
from automations.execution.resolve import find_step, resolve
from automations.records import RunRecord, RunStatus, StepStatus
from automations.stores import SQLiteStore
from tests.execution.conftest import Harness

pytestmark = pytest.mark.integration


def replay_with(harness: Harness, original: RunRecord, **kw: Any) -> RunRecord:
    async def go() -> RunRecord:
        async with harness.connections() as conns:
            return await replay(harness.executor(conns), original, harness.recipe, **kw)

    return asyncio.run(go())


def on(harness: Harness, store: SQLiteStore) -> Harness:
    return replace(harness, store=store)  # type: ignore[arg-type]


def failed_sms_run(harness: Harness) -> RunRecord:
    harness.script_for("/v1/messages", 402)
    run = harness.run()
    harness.before = None
    assert run.status is RunStatus.FAILED
    return run


def test_a_second_replay_racing_the_first_is_refused(harness: Harness, tmp_path: Path) -> None:
    """Two people replay the same run from two terminals: the second sees a stale record (no
    replay yet), and the store's own check refuses it before anything is sent."""
    db = tmp_path / "runs.db"
    first_store, second_store = SQLiteStore(db), SQLiteStore(db)
    first, second = on(harness, first_store), on(harness, second_store)
    original = failed_sms_run(first)
    stale = second_store.get_run(original.id)
    done = replay_with(first, original, actor="ada")
    assert done.status is RunStatus.SUCCEEDED
    with pytest.raises(RefusedError) as info:
        replay_with(second, stale, actor="bob")
    assert str(info.value) == (
        f"run {original.id} was replayed already: replayed as {done.id} (succeeded); "
        f"replay {done.id} if it failed"
    )
    assert info.value.run_id == done.id
    assert len(harness.quo.sent_messages) == 1
    assert [e.actor for e in second_store.audit_log(original.id)] == ["ada"]
    first_store.close()
    second_store.close()


def test_a_replay_carries_the_original_steps_it_keeps(harness: Harness) -> None:
    original = failed_sms_run(harness)
    done = replay_with(harness, original, actor="ada")
    contact, sms, event = done.steps
    assert contact == replace(original.steps[0], run_id=done.id)  # copied, never sent again
    assert (sms.status, event.status) == (StepStatus.SUCCEEDED, StepStatus.SUCCEEDED)
    # the contact, the SMS refused with 402, the replay's SMS
    assert [r.path for r in harness.quo.received] == [
        "/v1/contacts",
        "/v1/messages",
        "/v1/messages",
    ]
    assert done.event_key == original.event_key + "#replay"
    assert harness.store.get_run(original.id).replayed_as == done.id


def test_a_dry_run_replay_marks_nothing_and_a_real_one_can_follow(harness: Harness) -> None:
    original = failed_sms_run(harness)
    dry = replay_with(harness, original, dry_run=True)
    assert dry.dry_run and dry.replay_of == original.id
    assert dry.event_key.startswith(original.event_key + "#replay-dry-run-")
    assert harness.store.get_run(original.id).replayed_as is None
    assert harness.store.audit_log(original.id) == []
    real = replay_with(harness, harness.store.get_run(original.id))
    assert real.status is RunStatus.SUCCEEDED
    assert len(harness.quo.sent_messages) == 1


def test_resolve_refuses_what_is_not_unknown(harness: Harness) -> None:
    run = harness.run()
    with pytest.raises(RefusedError, match=r"step 2 \(sms\) is succeeded, not unknown"):
        resolve(harness.store, run.id, "sms", "sent", actor="ada")
    with pytest.raises(RefusedError, match="has no step '9'; its steps: 1 \\(contact\\), 2"):
        resolve(harness.store, run.id, "9", "sent", actor="ada")
    assert harness.store.audit_log() == []


def test_resolving_a_middle_step_as_sent_leaves_the_rest_to_a_replay(harness: Harness) -> None:
    harness.script_for("/v1/messages", 500)
    run = harness.run()
    assert run.status is RunStatus.UNKNOWN
    resolved = resolve(harness.store, run.id, "2", "sent", actor="ada", total_steps=3)
    assert resolved.status is RunStatus.FAILED
    assert resolved.error == (
        f"sms was sent (resolved by ada); the steps after it have not run: replay {run.id} to "
        "run them"
    )
    assert find_step(resolved, "sms").resolution == "sent"
    harness.before = None
    done = replay_with(harness, resolved)
    assert done.status is RunStatus.SUCCEEDED
    assert [s.status for s in done.steps] == [StepStatus.SUCCEEDED] * 3
    assert done.steps[1].resolution == "sent"  # copied as resolved, never sent
    assert [r.path for r in harness.quo.received] == ["/v1/contacts", "/v1/messages"]
    assert harness.loops.count == 1
