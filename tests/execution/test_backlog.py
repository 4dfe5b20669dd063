"""``automations status``: queued, sent in the last minute, and
when the backlog drains at that pace."""

from __future__ import annotations

import dataclasses

from automations.execution.backlog import (
    BacklogLine,
    backlog_table,
    measure_backlog,
)
from automations.execution.pauses import (
    SCOPE,
    Pause,
    clear_pauses,
    paused_connections,
    record_pause,
)
from automations.records import RunStatus, StepStatus
from automations.stores import MemoryStore
from tests.stores.factories import T0, make_run, make_step

NOW = T0 + 1000
ACTIONS = {"leads": ["quo.create_contact", "quo.send_sms"], "signups": ["loops.update_contact"]}


def history() -> MemoryStore:
    store = MemoryStore()
    for i in range(6):  # 6 leads waiting (one of them running)
        status = RunStatus.RUNNING if i == 0 else RunStatus.PENDING
        store.enqueue(make_run(f"wait{i}", recipe="leads", status=status))
    for i in range(2):  # 2 leads done in the last 50 s, two Quo requests each
        store.enqueue(make_run(f"done{i}", recipe="leads", status=RunStatus.SUCCEEDED))
        for index, action in enumerate(ACTIONS["leads"]):
            step = make_step(f"done{i}", index, status=StepStatus.SUCCEEDED)
            store.put_step(
                dataclasses.replace(
                    step, action=action, started_at=NOW - 55, finished_at=NOW - 50 + 30 * i
                )
            )
    store.enqueue(make_run("old", recipe="signups", status=RunStatus.SUCCEEDED))
    step = make_step("old", 0)
    store.put_step(dataclasses.replace(step, action="loops.update_contact", finished_at=NOW - 61))
    for i in range(3):  # 3 signups waiting, nothing sent lately: stalled
        store.enqueue(make_run(f"sign{i}", recipe="signups", status=RunStatus.PENDING))
    return store


def test_queues_pace_and_estimates() -> None:
    backlog = measure_backlog(history(), NOW, ACTIONS)
    assert backlog.recipes == (
        BacklogLine("leads", 6, 4, 150.0),  # 6 runs at 2 runs per 50 s
        BacklogLine("signups", 3, 0, None),
    )
    assert backlog.connections == (
        BacklogLine("loops", 3, 0, None),
        BacklogLine("quo", 12, 4, 150.0),  # 6 runs x 2 requests at 4 per 50 s
    )
    assert backlog.busy


def test_the_table() -> None:
    backlog = measure_backlog(history(), NOW, ACTIONS)
    assert backlog_table(backlog) == [
        "RECIPE                            QUEUED runs  SENT LAST MIN  DRAINS IN",
        "leads                                       6              4  ~2m30s",
        "signups                                     3              0  "
        "stalled: nothing sent in the last minute",
        "",
        "CONNECTION                    QUEUED requests  SENT LAST MIN  DRAINS IN",
        "loops                                       3              0  "
        "stalled: nothing sent in the last minute",
        "quo                                        12              4  ~2m30s",
    ]


def test_the_pace_is_taken_over_the_time_there_were_sends() -> None:
    """A runner sending for 20 s: its pace is what it sent in 20 s, not in a minute."""
    store = MemoryStore()
    for i in range(10):
        store.enqueue(make_run(f"wait{i}", recipe="leads"))
    store.enqueue(make_run("done", recipe="leads", status=RunStatus.SUCCEEDED))
    step = dataclasses.replace(make_step("done", 0), started_at=NOW - 21, finished_at=NOW - 20)
    store.put_step(step)
    [line] = measure_backlog(store, NOW).recipes
    assert line.drains_in_s == 200.0  # 10 runs at 1 per 20 s
    step = dataclasses.replace(step, finished_at=NOW - 1)
    store.put_step(step)
    [line] = measure_backlog(store, NOW).recipes
    assert line.drains_in_s == 100.0  # one send 1 s ago is no pace: at least 10 s


def test_without_recipe_files_the_actions_seen_stand_in() -> None:
    backlog = measure_backlog(history(), NOW)
    assert [(c.name, c.queued) for c in backlog.connections] == [("quo", 12)]


def test_nothing_waiting_is_not_busy() -> None:
    assert not measure_backlog(MemoryStore(), NOW).busy


def test_a_pause_recorded_by_a_runner_is_seen_by_any_reader_until_it_resumes() -> None:
    store = history()
    reason = "answered 401 (authentication failed); Loops rejected the API key"
    record_pause(store, "loops", Pause("loops", reason, NOW - 5))
    record_pause(store, "quo", None)  # a resume of a connection that was never paused
    paused = {c.name: c.paused for c in measure_backlog(store, NOW, ACTIONS).connections}
    assert paused == {"loops": reason, "quo": None}
    assert "paused: " + reason in "\n".join(backlog_table(measure_backlog(store, NOW, ACTIONS)))
    assert paused_connections(store) == {"loops": Pause("loops", reason, NOW - 5)}
    record_pause(store, "loops", None)
    assert paused_connections(store) == {}
    record_pause(store, "quo", Pause("quo", "answered 402", None))
    clear_pauses(store)  # a runner starting: its breakers are closed
    assert paused_connections(store) == {}
    assert all(c.paused is None for c in measure_backlog(store, NOW, ACTIONS).connections)


def test_an_unreadable_pause_mark_still_says_paused() -> None:
    store = MemoryStore()
    store.set_state(SCOPE, [("quo", "not json")])
    assert paused_connections(store) == {"quo": Pause("quo", "paused (reason unreadable)", None)}
