"""How values are written on the pages (Jinja2 filters) and a run's list line as data.

Templates escape everything (autoescape on ``.html``); these only choose the text. A list line
masks phone numbers and e-mail addresses (``masking``); the run page shows them in full.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from automations.cli.timeline import duration_text, first_line, run_duration
from automations.console.masking import mask_text
from automations.records import RunRecord, RunStatus, StepStatus, row_key

__all__ = ["FILTERS", "run_line"]

#: The longest body text shown on a run page (the audit caps bodies already).
_BODY_CHARS = 20_000


def _ts(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _ms(ms: float | None) -> str:
    return "-" if ms is None else duration_text(ms / 1000)


def _pretty(value: Any) -> str:
    """JSON for a person: indented, non-ASCII as is, cut at ``_BODY_CHARS``."""
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > _BODY_CHARS:
        text = text[:_BODY_CHARS] + f"\n… ({len(text) - _BODY_CHARS:,} more characters)"
    return text


def _thousands(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


FILTERS: dict[str, Callable[..., Any]] = {
    "ts": _ts,
    "iso": _iso,
    "ms": _ms,
    "seconds": duration_text,
    "pretty": _pretty,
    "mask": mask_text,
    "first_line": first_line,
    "thousands": _thousands,
    "took": lambda run: duration_text(run_duration(run)),
}


def run_line(run: RunRecord) -> dict[str, Any]:
    """What a line of the runs list shows of ``run``: its key and error masked."""
    error = run.error or next((s.error for s in run.steps if s.error), None)
    return {
        "id": run.id,
        "time": _ts(run.created_at),
        "iso": _iso(run.created_at),
        "recipe": run.recipe,
        "trigger": run.trigger.value,
        "key": mask_text(row_key(run.event_key)),
        "status": run.status.value,
        "dry_run": run.dry_run,
        "duration": duration_text(run_duration(run)),
        "error": mask_text(first_line(error, 120)),
        "steps": [
            {"id": s.step_id, "action": s.action, "status": s.status.value} for s in run.steps
        ],
        "replay_of": run.replay_of,
        "replayed_as": run.replayed_as,
        "replayable": run.status is RunStatus.FAILED and run.replayed_as is None,
        "unknown": any(s.status is StepStatus.UNKNOWN for s in run.steps),
    }
