"""``automations status`` and the runner's backlog line: queued, sent in the last minute, and
when the backlog drains at that pace."""

from __future__ import annotations

import dataclasses

from automations.execution.backlog import (
    BacklogLine,
    backlog_log_line,
    backlog_table,
    measure_backlog,
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
    for i in range(2):  # 2 leads done in the last minute, two Quo requests each
        store.enqueue(make_run(f"done{i}", recipe="leads", status=RunStatus.SUCCEEDED))
        for index, action in enumerate(ACTIONS["leads"]):
            step = make_step(f"done{i}", index, status=StepStatus.SUCCEEDED)
            store.put_step(
                dataclasses.replace(step, action=action, started_at=NOW - 30, finished_at=NOW - 20)
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
        BacklogLine("leads", 6, 4, 180.0),  # 6 runs at 2 runs a minute
        BacklogLine("signups", 3, 0, None),
    )
    assert backlog.connections == (
        BacklogLine("loops", 3, 0, None),
        BacklogLine("quo", 12, 4, 180.0),  # 6 runs x 2 requests at 4 a minute
    )
    assert backlog.busy


def test_the_table_and_the_log_line() -> None:
    backlog = measure_backlog(history(), NOW, ACTIONS)
    assert backlog_table(backlog) == [
        "RECIPE                            QUEUED runs  SENT LAST MIN  DRAINS IN",
        "leads                                       6              4  ~3m00s",
        "signups                                     3              0  "
        "stalled: nothing sent in the last minute",
        "",
        "CONNECTION                    QUEUED requests  SENT LAST MIN  DRAINS IN",
        "loops                                       3              0  "
        "stalled: nothing sent in the last minute",
        "quo                                        12              4  ~3m00s",
    ]
    assert backlog_log_line(backlog) == (
        "backlog: leads 6 queued, 4 sent in the last minute, drains in ~3m00s; "
        "signups 3 queued, 0 sent in the last minute, stalled | connections: "
        "loops 3 requests queued, 0/min, stalled; quo 12 requests queued, 4/min, drains in ~3m00s"
    )


def test_without_recipe_files_the_actions_seen_stand_in() -> None:
    backlog = measure_backlog(history(), NOW)
    assert [(c.name, c.queued) for c in backlog.connections] == [("quo", 12)]


def test_nothing_waiting_is_not_busy() -> None:
    assert not measure_backlog(MemoryStore(), NOW).busy
