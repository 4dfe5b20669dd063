"""Records for the store tests: small runs and steps with exact, readable values."""

from __future__ import annotations

from typing import Any

from automations.records import RunRecord, RunStatus, StepRecord, StepStatus, TriggerKind

T0 = 1_750_000_000.0


def make_run(
    run_id: str,
    *,
    recipe: str = "welcome",
    event_key: str | None = None,
    created_at: float = T0,
    status: RunStatus = RunStatus.PENDING,
    event: Any = None,
    steps: tuple[StepRecord, ...] = (),
) -> RunRecord:
    return RunRecord(
        id=run_id,
        recipe=recipe,
        trigger=TriggerKind.WEBHOOK,
        event_key=event_key if event_key is not None else f"key-{run_id}",
        event=event if event is not None else {"email": f"{run_id}@example.com"},
        created_at=created_at,
        status=status,
        steps=steps,
    )


def make_step(
    run_id: str,
    index: int = 0,
    *,
    status: StepStatus = StepStatus.SUCCEEDED,
    response_body: Any = None,
    error: str | None = None,
) -> StepRecord:
    return StepRecord(
        run_id=run_id,
        index=index,
        step_id=f"step{index}",
        action="loops.send_event",
        status=status,
        request={"method": "POST", "url": "https://app.loops.so/api/v1/events/send"},
        http_status=200 if status is StepStatus.SUCCEEDED else None,
        response_body=response_body,
        attempts=1,
        duration_ms=12.5,
        error=error,
        started_at=T0 + 1,
        finished_at=T0 + 2,
    )


def typical_run(i: int, run_id: str, *, rich: bool = False) -> tuple[RunRecord, list[StepRecord]]:
    """A two-step run (Loops update contact, Loops send event) and its final steps, as the
    executor records them; ``rich``: the second step is a Quo SMS answered with Quo's full
    message object. ``bench/bench_audit.py`` measures these.
    """
    email = f"user{i:08d}@example.com"
    # The executor keeps no connection headers per step (only an http.request's own).
    key = f"automations-{run_id}-1"
    run = RunRecord(
        id=run_id,
        recipe="welcome",
        trigger=TriggerKind.WEBHOOK,
        event_key=f"evt_{i:020d}",
        event={"email": email, "firstName": "Ada", "plan": "pro"},
        created_at=T0 + i * 0.001,
    )
    contact = StepRecord(
        run_id,
        0,
        "contact",
        "loops.update_contact",
        StepStatus.SUCCEEDED,
        request={
            "method": "PUT",
            "url": "https://app.loops.so/api/v1/contacts/update",
            "body": {"email": email, "firstName": "Ada", "userGroup": "pro"},
        },
        http_status=200,
        response_body={"success": True, "id": "cm1x2y3z4a5b6c7d8e9f0g1h2"},
        attempts=1,
        duration_ms=84.2,
        started_at=T0 + 1.0,
        finished_at=T0 + 1.1,
    )
    event = StepRecord(
        run_id,
        1,
        "welcome_event",
        "loops.send_event",
        StepStatus.SUCCEEDED,
        request={
            "method": "POST",
            "url": "https://app.loops.so/api/v1/events/send",
            "body": {"email": email, "eventName": "welcome"},
        },
        http_status=200,
        response_body={"success": True},
        attempts=1,
        duration_ms=91.7,
        idempotency_key=key,
        started_at=T0 + 1.1,
        finished_at=T0 + 1.2,
    )
    if rich:
        phone = f"+1555{i:07d}"
        event = StepRecord(
            run_id,
            1,
            "sms",
            "quo.send_sms",
            StepStatus.SUCCEEDED,
            request={
                "method": "POST",
                "url": "https://api.openphone.com/v1/messages",
                "body": {"content": "Hi Ada, welcome!", "from": "+15555550100", "to": [phone]},
            },
            http_status=202,
            response_body={
                "data": {
                    "id": "AC3700e624833f4b3fa0e4f0e4d4f3fa",
                    "to": [phone],
                    "from": "+15555550100",
                    "text": "Hi Ada, welcome!",
                    "phoneNumberId": "PNabc123",
                    "direction": "outgoing",
                    "userId": "USabc123",
                    "status": "queued",
                    "createdAt": "2025-06-01T00:00:00Z",
                    "updatedAt": "2025-06-01T00:00:00Z",
                }
            },
            attempts=1,
            duration_ms=211.5,
            started_at=T0 + 1.1,
            finished_at=T0 + 1.3,
        )
    return run, [contact, event]


class FakeClock:
    """A clock that says what it is told."""

    def __init__(self, now: float = T0 + 100) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
