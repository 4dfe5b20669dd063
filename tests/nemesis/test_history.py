"""The history checker on synthetic histories: a clean one passes, and each broken promise is
reported with exactly one sentence that names it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.nemesis.history import (
    Event,
    Fault,
    History,
    Request,
    Run,
    Step,
    check,
    load,
    max_in_sliding_window,
)

SMS, CONTACT, LOOPS = "POST /v1/messages", "POST /v1/contacts", "POST /v1/events/send"


def _req(kind: str, at: float, ref: str, outcome: int | str = 202, **kw: object) -> Request:
    method, path = kind.split(" ")
    fake = "loops" if "events" in path else "quo"
    key = "loops-key" if fake == "loops" else "quo-key"
    return Request(fake, at, method, path, key, outcome, ref, **kw)  # type: ignore[arg-type]


def _sms_run(n: int, status: str = "succeeded") -> Run:
    steps = (
        Step(0, "contact", "quo.create_contact", status),
        Step(1, "sms", "quo.send_sms", status),
    )
    return Run(f"r-sms-{n}", "lead-sms", "table", f"lead{n}@x", status, steps)


def _loops_run(n: int, status: str = "succeeded") -> Run:
    step = Step(0, "send", "loops.send_event", status, f"automations-r-hook-{n}-0")
    return Run(f"r-hook-{n}", "hook", "webhook", f"msg_{n}", status, (step,))


def _clean() -> History:
    h = History(seed=7, sms_recipes=frozenset({"lead-sms"}), schedule_recipes=frozenset({"tick"}))
    t = 1000.0
    for n in range(3):
        h.events.append(Event("lead-sms", f"lead{n}@x"))
        h.runs.append(_sms_run(n))
        h.requests += [
            _req(CONTACT, t, f"lead-sms/lead{n}@x", 201),
            _req(SMS, t + 0.1, f"lead-sms/lead{n}@x"),
        ]
        h.events.append(Event("hook", f"msg_{n}"))
        h.runs.append(_loops_run(n))
        h.requests.append(
            _req(LOOPS, t + 0.2, f"hook/msg_{n}", 200, idempotency_key=f"automations-r-hook-{n}-0")
        )
        t += 1.0
    # a Loops event resent after a kill: the same key, answered 409 the second time
    h.requests.append(_req(LOOPS, t, "hook/msg_0", 409, idempotency_key="automations-r-hook-0-0"))
    # a webhook whose answer was lost (the node was killed): it may have a run, here it has none
    h.events.append(Event("hook", "msg_9", required=False))
    # an SMS cut off by a kill: never received, the run is unknown
    h.events.append(Event("lead-sms", "lead7@x"))
    h.runs.append(_sms_run(7, "unknown"))
    # one that was received, and whose outcome the runner never learned: unknown as well
    h.events.append(Event("lead-sms", "lead8@x"))
    h.runs.append(_sms_run(8, "unknown"))
    h.requests.append(_req(SMS, t + 0.5, "lead-sms/lead8@x", "ReadTimeout"))
    for s in range(3):
        h.runs.append(
            Run(f"r-tick-{s}", "tick", "schedule", f"2026-01-01T00:00:0{s}Z", "succeeded")
        )
    h.faults.append(Fault(t, "sigkill", "node-1"))
    return h


def test_a_clean_history_passes() -> None:
    assert check(_clean()) == []


def test_two_runs_of_one_event() -> None:
    h = _clean()
    h.runs.append(dataclasses.replace(_loops_run(1), id="r-hook-1-again"))
    assert check(h) == ["event hook/msg_1 has 2 runs"]


def test_an_accepted_event_without_a_run() -> None:
    h = _clean()
    h.events.append(Event("hook", "msg_5"))
    assert check(h) == ["event hook/msg_5 was accepted but has no run"]


def test_a_run_nobody_asked_for() -> None:
    h = _clean()
    h.runs.append(_loops_run(6))
    h.requests.append(
        _req(LOOPS, 1010.0, "hook/msg_6", 200, idempotency_key="automations-r-hook-6-0")
    )
    assert check(h) == ["run of hook/msg_6: no client produced that event"]


def test_an_sms_received_twice() -> None:
    h = _clean()
    h.requests.append(_req(SMS, 1020.0, "lead-sms/lead1@x"))
    assert check(h) == [
        "quo received POST /v1/messages for lead-sms/lead1@x 2 times",
        "lead-sms/lead1@x succeeded, but the provider received its SMS 2 times",
    ]


def test_an_sms_received_twice_even_when_the_second_answer_was_lost() -> None:
    h = _clean()
    h.requests.append(_req(SMS, 1020.0, "lead-sms/lead8@x", 202))
    assert check(h) == ["quo received POST /v1/messages for lead-sms/lead8@x 2 times"]


def test_a_contact_created_twice() -> None:
    h = _clean()
    h.requests.append(_req(CONTACT, 1020.0, "lead-sms/lead2@x", 201))
    assert check(h) == ["quo received POST /v1/contacts for lead-sms/lead2@x 2 times"]


def test_a_refused_retry_is_not_a_second_sms() -> None:
    h = _clean()
    h.requests.append(_req(SMS, 1030.0, "lead-sms/lead2@x", 500))
    assert check(h) == []


def test_an_sms_never_received_but_recorded_as_succeeded() -> None:
    h = _clean()
    h.events.append(Event("lead-sms", "lead5@x"))
    h.runs.append(_sms_run(5))
    assert check(h) == [
        "the SMS of lead-sms/lead5@x never reached the provider, yet the run is succeeded",
        "lead-sms/lead5@x succeeded, but the provider received its SMS 0 times",
    ]


def test_an_sms_never_received_may_be_failed() -> None:
    h = _clean()
    h.events.append(Event("lead-sms", "lead5@x"))
    h.runs.append(_sms_run(5, "failed"))
    assert check(h) == []


def test_a_loops_event_resent_under_another_key() -> None:
    h = _clean()
    h.requests.append(_req(LOOPS, 1040.0, "hook/msg_2", 200, idempotency_key="other"))
    assert check(h) == [
        "POST /v1/events/send for hook/msg_2 was resent under 2 keys: "
        "['automations-r-hook-2-0', 'other']",
        "POST /v1/events/send for hook/msg_2 was accepted 2 times",
        "hook/msg_2 succeeded, but POST /v1/events/send was accepted 2 times",
    ]


def test_a_loops_event_without_a_key() -> None:
    h = _clean()
    h.requests.append(_req(LOOPS, 1040.0, "hook/msg_2", 409))
    assert check(h) == [
        "POST /v1/events/send for hook/msg_2 was sent without an Idempotency-Key",
        "POST /v1/events/send for hook/msg_2 was resent under 2 keys: "
        "['None', 'automations-r-hook-2-0']",
    ]


def test_a_succeeded_loops_run_whose_event_never_arrived() -> None:
    h = _clean()
    h.events.append(Event("hook", "msg_4"))
    h.runs.append(_loops_run(4))
    assert check(h) == ["hook/msg_4 succeeded, but POST /v1/events/send was accepted 0 times"]


def test_eleven_requests_in_a_sliding_second() -> None:
    h = _clean()
    # 11 requests 0.099 s apart span 0.99 s: never more than 6 in one clock second, but 11 in
    # the sliding second that ends at the last one
    h.requests += [_req(CONTACT, 2000.5 + i * 0.099, f"x/{i}", 400) for i in range(11)]
    assert check(h) == ["quo saw 11 requests of one key in the 1 s ending at 2001.490 (limit 10)"]


def test_ten_a_second_apart_by_a_hair_pass() -> None:
    h = _clean()
    h.requests += [_req(CONTACT, 3000.0 + i * 0.1, f"x/{i}", 400) for i in range(30)]
    assert check(h) == []


def test_each_key_is_paced_on_its_own() -> None:
    h = _clean()
    for i in range(10):
        h.requests.append(_req(CONTACT, 4000.0 + i * 0.05, f"x/{i}", 400))
        h.requests.append(
            dataclasses.replace(_req(CONTACT, 4000.0 + i * 0.05, f"y/{i}", 400), key="other-key")
        )
    assert check(h) == []


def test_a_429_is_reported() -> None:
    h = _clean()
    h.requests.append(_req(SMS, 5000.0, "lead-sms/lead7@x", 429))
    assert check(h) == ["quo answered 429 at 5000.000 (POST /v1/messages for lead-sms/lead7@x)"]


def test_a_fire_time_run_twice() -> None:
    h = _clean()
    h.runs.append(Run("r-tick-x", "tick", "schedule", "2026-01-01T00:00:01Z", "succeeded"))
    assert check(h) == [
        "event tick/2026-01-01T00:00:01Z has 2 runs",
        "schedule tick ran fire time 2026-01-01T00:00:01Z 2 times",
    ]


def test_a_schedule_that_never_fired() -> None:
    h = _clean()
    h.runs = [r for r in h.runs if r.recipe != "tick"]
    assert check(h) == ["schedule tick never fired"]


@pytest.mark.parametrize("status", ["pending", "running"])
def test_a_run_left_open(status: str) -> None:
    h = _clean()
    h.events.append(Event("lead-sms", "lead6@x"))
    h.runs.append(_sms_run(6, status))
    assert check(h) == [f"lead-sms/lead6@x (r-sms-6) is still {status} after the quiet period"]


def test_max_in_sliding_window() -> None:
    assert max_in_sliding_window([]) == (0, 0.0)
    assert max_in_sliding_window([1.0, 2.0, 3.0]) == (1, 1.0)
    assert max_in_sliding_window([1.0, 1.5, 1.99, 2.5]) == (3, 1.99)


def test_a_dumped_history_loads_back(tmp_path: Path) -> None:
    h = _clean()
    h.dump(tmp_path / "history.json")
    assert load(tmp_path / "history.json") == h
    assert h.summary().startswith("seed 7: 9 events, 11 runs")
