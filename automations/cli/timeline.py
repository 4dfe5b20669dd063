"""How ``runs`` and ``show`` print runs for a person: a table row per run, a timeline per run.

The JSON forms (``--format json``) are the full records; these texts choose what an operator
reads first: which event, what the condition said, what each step sent and got back, how long
it took, and the first line of what went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from automations.records import AuditEntry, RunRecord, StepRecord, StepStatus, row_key

__all__ = ["duration_text", "first_line", "run_timeline", "runs_table"]

_SUMMARY = 160


def _time(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration_text(seconds: float | None) -> str:
    """``840ms``, ``2.4s``, ``3m05s``, or ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def run_duration(run: RunRecord) -> float | None:
    """From the worker taking the run to its end (``None`` while it is not finished)."""
    start = run.started_at if run.started_at is not None else run.created_at
    return None if run.finished_at is None else run.finished_at - start


def first_line(text: str | None, width: int = 80) -> str:
    """The first line of ``text``, cut to ``width`` characters (with ``…``)."""
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _status(run: RunRecord) -> str:
    return run.status.value + (" (dry run)" if run.dry_run else "")


def runs_table(runs: Sequence[RunRecord]) -> list[str]:
    """The lines of the ``runs`` table: id, when, recipe, key, status, duration, steps and the
    first line of the error."""
    lines = [
        f"{'ID':<12}  {'CREATED (UTC)':<19}  {'RECIPE':<22}  {'KEY':<26}  {'STATUS':<19}  "
        f"{'TOOK':>6}  {'STEPS':<24}  ERROR"
    ]
    for r in runs:
        steps = " ".join(f"{s.action.split('.')[-1]}:{s.status.value}" for s in r.steps)
        error = r.error or next((s.error for s in r.steps if s.error), None)
        chain = (f"replay of {r.replay_of[:12]} " if r.replay_of else "") + (
            f"replayed as {r.replayed_as[:12]} " if r.replayed_as else ""
        )
        line = (
            f"{r.id[:12]:<12}  {_time(r.created_at):<19}  {_cut(r.recipe, 22):<22}  "
            f"{_cut(row_key(r.event_key), 26):<26}  {_status(r):<19}  "
            f"{duration_text(run_duration(r)):>6}  {steps:<24}  {chain}{first_line(error)}"
        )
        lines.append(line.rstrip())
    if not runs:
        lines.append("(no runs)")
    return lines


def _summary(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _cut(" ".join(text.split()), _SUMMARY)


def _step_lines(s: StepRecord) -> list[str]:
    head = f"  {s.index + 1}. {s.step_id}  {s.action}  {s.status.value}"
    if s.http_status is not None:
        head += f"  HTTP {s.http_status}"
    if s.duration_ms is not None:
        head += f"  {duration_text(s.duration_ms / 1000)}"
    if s.attempts > 1:
        head += f"  {s.attempts} attempts"
    out = [head]
    if s.status is StepStatus.SKIPPED:
        out.append("       skipped: the step's only_run_if was false")
    req = s.request or {}
    if req:
        out.append(f"       request   {req.get('method', '?')} {req.get('url', '?')}")
        if req.get("body") is not None:
            out.append(f"                 {_summary(req.get('body'))}")
    if s.response_body is not None or s.http_status is not None:
        out.append(f"       response  {_summary(s.response_body)}")
    if s.idempotency_key:
        out.append(f"       idempotency key  {s.idempotency_key}")
    if s.error:
        out.append(f"       error     {first_line(s.error, 200)}")
    if s.resolution:
        out.append(f"       resolved  {s.resolution}")
    return out


def run_timeline(
    run: RunRecord,
    condition: str | None,
    decisions: Sequence[AuditEntry] = (),
    waiting: Sequence[str] = (),
) -> str:
    """``show``'s text: the run as it happened, step by step. ``condition`` is the recipe's
    ``only_run_if`` as the version that ran wrote it (``None``: none, or not known);
    ``waiting`` says what a pending run waits for (a paused connection)."""
    lines = [f"run {run.id}  {run.recipe}  {_status(run)}"]
    when = _time(run.created_at)
    lines.append(f"  event      {run.trigger.value} {run.event_key}  at {when} UTC")
    if run.replay_of:
        lines.append(f"  replay of  {run.replay_of}")
    if run.replayed_as:
        lines.append(f"  replayed as {run.replayed_as}")
    if run.recipe_hash:
        lines.append(f"  version    {run.recipe_hash}")
    if run.condition is None:
        verdict = "not evaluated"
    else:
        verdict = "true: the steps ran" if run.condition else "false: nothing was sent"
    expression = condition if condition is not None else "(no only_run_if)"
    if condition is not None or run.condition is not None:
        lines.append(f"  condition  {expression}  ->  {verdict}")
    for s in run.steps:
        lines.extend(_step_lines(s))
    if run.error:
        lines.append(f"  error      {first_line(run.error, 200)}")
    lines.extend(f"  waiting    {why}" for why in waiting)
    took = duration_text(run_duration(run))
    if run.finished_at is not None:
        lines.append(f"  finished   {_time(run.finished_at)} UTC, took {took}")
    for e in decisions:
        what = f" step {e.step_index + 1}" if e.step_index is not None else ""
        detail = f" {json.dumps(e.detail, ensure_ascii=False)}" if e.detail else ""
        lines.append(f"  decision   {_time(e.at)} UTC {e.actor}: {e.action}{what}{detail}")
    return "\n".join(lines)
