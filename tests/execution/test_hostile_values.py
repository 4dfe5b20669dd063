"""Values nothing expected, and failures nothing expected: a run always ends, saying why, and a
request that never left is never reported ``unknown``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from automations.execution.executor import CUT_EVENT, new_run
from automations.recipes.compiler import load_recipe_text
from automations.records import RunStatus, StepStatus, TriggerKind
from automations.stores.codec import TRUNCATED_KEY
from tests.execution.conftest import ENV, ROW, Harness

SMS = """
name: sms
trigger:
  webhook: {path: /h, verify: {scheme: none}}
actions:
  - id: sms
    quo.send_sms: {from: "${QUO_FROM}", to: [/Phone], content: "{/Note}"}
"""

EVENT = """
name: event
trigger:
  webhook: {path: /e, verify: {scheme: none}}
actions:
  - id: event
    loops.send_event: {email: /Email, eventName: signedUp}
"""

POST = """
name: post
trigger:
  webhook: {path: /p, verify: {scheme: none}}
actions:
  - id: post
    http.request: {method: POST, url: "https://hooks.example/x", json: {v: /v}}
"""


def _use(harness: Harness, text: str, tmp_path: Path) -> None:
    result = load_recipe_text(
        text, "r.yaml", base_dir=tmp_path, env=ENV, source=tmp_path / "r.yaml"
    )
    assert result.recipe is not None, result.diagnostics
    harness.recipe = result.recipe


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (float("nan"), "its body holds NaN or Infinity, which JSON cannot carry"),
        (float("inf"), "its body holds NaN or Infinity, which JSON cannot carry"),
        ("\ud800", "it holds a lone surrogate"),
    ],
)
def test_a_body_json_cannot_carry_fails_before_anything_leaves(
    harness: Harness, tmp_path: Path, value: object, why: str
) -> None:
    _use(harness, POST, tmp_path)
    run = harness.run({"v": value})
    assert run.status is RunStatus.FAILED
    [step] = run.steps
    assert step.status is StepStatus.FAILED  # never "sending", never "unknown"
    assert why in (step.error or "") and why in (run.error or "")
    assert harness.quo.count == 0
    assert harness.store.unfinished() == []
    assert harness.store.get_run(run.id).steps[0].status is StepStatus.FAILED


def test_a_lone_surrogate_in_an_sms_is_failed_not_unknown(harness: Harness, tmp_path: Path) -> None:
    _use(harness, SMS, tmp_path)
    run = harness.run({"Phone": "+15555550100", "Note": "hi \ud800"})
    assert run.status is RunStatus.FAILED
    assert [s.status for s in run.steps] == [StepStatus.FAILED]
    assert harness.quo.count == 0


def _explode(request: httpx.Request) -> None:
    raise RuntimeError("transport bug")


def test_an_unexpected_error_after_sending_is_unknown(harness: Harness, tmp_path: Path) -> None:
    # an SMS must not be sent twice: once "sending" is recorded, an unexpected failure may have
    # delivered it, so a person decides
    _use(harness, SMS, tmp_path)
    harness.before = _explode
    run = harness.run({"Phone": "+15555550100", "Note": "hello"})
    assert run.status is RunStatus.UNKNOWN
    [step] = run.steps
    assert step.status is StepStatus.UNKNOWN
    assert step.error == (
        "the send failed unexpectedly (RuntimeError: transport bug); it may or may not have "
        f"reached the provider: check whether it went through, then `automations resolve "
        f"{run.id} sms sent` (or `not-sent`, and replay)"
    )
    assert harness.store.unfinished() == []


def test_an_unexpected_error_on_a_resend_safe_request_fails_the_run(
    harness: Harness, tmp_path: Path
) -> None:
    # a keyed Loops event is never marked "sending": it fails, and a replay sends it again
    _use(harness, EVENT, tmp_path)
    harness.before = _explode
    run = harness.run()
    assert run.status is RunStatus.FAILED
    [step] = run.steps
    assert step.status is StepStatus.FAILED
    assert step.error == "the send failed unexpectedly (RuntimeError: transport bug)"
    assert harness.store.unfinished() == []


def test_an_unexpected_error_while_rendering_fails_the_run(
    harness: Harness, tmp_path: Path
) -> None:
    # a value nested far deeper than any delivery (the intake refuses these) breaks rendering
    deep: object = "x"
    for _ in range(3000):
        deep = [deep]
    _use(harness, POST, tmp_path)
    stored = harness.store.enqueue(new_run("post", TriggerKind.MANUAL, "k", {"v": "ok"}))[0]
    run = harness.run(existing=dataclasses.replace(stored, event={"v": deep}))
    assert run.status is RunStatus.FAILED
    assert (run.error or "").startswith("post: RecursionError")
    assert harness.quo.count == 0
    assert harness.store.unfinished() == []


def test_an_event_cut_by_an_older_version_is_not_run(harness: Harness) -> None:
    marker = {TRUNCATED_KEY: 8255, "head": '{"Email":"ada@example.com","Notes":"nnnn'}
    stored = harness.store.enqueue(new_run("lead", TriggerKind.TABLE, "ada", marker))[0]
    run = harness.run(existing=stored)
    assert run.status is RunStatus.FAILED
    assert run.error == CUT_EVENT
    assert run.steps == ()
    assert harness.quo.count == 0 and harness.loops.count == 0
    assert harness.store.get_run(stored.id).status is RunStatus.FAILED


def test_an_event_over_8_kb_runs_whole(harness: Harness) -> None:
    notes = "n" * 9_000
    run = harness.run({**ROW, "Notes": notes})
    assert run.status is RunStatus.SUCCEEDED
    assert harness.store.get_run(run.id).event == {**ROW, "Notes": notes}
    assert harness.quo.count == 2 and harness.loops.count == 1
