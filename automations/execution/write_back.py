"""``write_back``: a finished run's values written into its own row of a database table.

Once a run of a recipe with ``write_back:`` has ended ``succeeded``, ``failed`` or ``unknown``
(not ``skipped``, not a dry run), each ``column: template`` is rendered with the row, the
responses of the run's steps that succeeded (``/@step.path``) and the run's error (``/@error``:
null when it succeeded), and the values are set in the row whose key is the run's, in one
``UPDATE``.

When (``Executor.execute``): after the run's steps are recorded and before its final status is.
A runner stopped in between resumes the run (it is still ``running``), finds every step done and
writes back again: the same ``UPDATE`` with the same values, so a write-back is never lost and
doing it twice changes nothing. A write-back that fails (a column missing from the table, the
database unreachable) makes the run ``failed`` with ``write_back: <why>`` as its error; fix the
cause and ``automations replay`` the run: its steps that succeeded are copied, not sent again,
and the write-back is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automations.errors import TableDatabaseError
from automations.execution.rows import row_for
from automations.model import DbTableSpec, Recipe, TableTrigger
from automations.records import RunRecord, RunStatus, StepStatus
from automations.templates import RenderContext
from automations.triggers.table_db import connect

__all__ = ["WRITES_BACK", "render_write_back", "write_back", "writes_back"]

#: The final statuses after which a run writes back.
WRITES_BACK = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.UNKNOWN})
_ERROR = "error"


def writes_back(recipe: Recipe) -> DbTableSpec | None:
    """The database table ``recipe`` writes back into, if it does."""
    trigger = recipe.trigger
    if recipe.write_back and isinstance(trigger, TableTrigger):
        spec = trigger.table
        if isinstance(spec, DbTableSpec) and spec.table is not None:
            return spec
    return None


def render_write_back(recipe: Recipe, run: RunRecord, env: Mapping[str, str]) -> dict[str, Any]:
    """The values ``run`` writes back, by column."""
    responses: dict[str, Any] = {}
    steps = {step.index: step for step in run.steps}
    for index, action in enumerate(recipe.actions):
        step = steps.get(index)
        if step is None or step.status is not StepStatus.SUCCEEDED:
            continue
        responses[action.id] = step.response_body
        if action.response_as:
            responses[action.response_as] = step.response_body
    responses[_ERROR] = run.error
    ctx = RenderContext(row_for(recipe, run.event), env, responses)
    return {column: template.render(ctx) for column, template in recipe.write_back}


def write_back(recipe: Recipe, run: RunRecord, env: Mapping[str, str]) -> int:
    """Write ``run``'s values into its row (blocking: call it on a thread). Returns how many
    rows were updated (0: no row has the key any more). ``TableDatabaseError`` when it fails."""
    spec = writes_back(recipe)
    if spec is None:
        return 0
    event = run.event if isinstance(run.event, dict) else {}
    if event.get(spec.key) is None:
        raise TableDatabaseError(f"the run's row has no key column {spec.key!r}")
    values = render_write_back(recipe, run, env)
    conn = connect(spec.database, env, table=spec.table, query=None, writable=True)
    try:
        return conn.write_back(spec.key, event[spec.key], values)
    finally:
        conn.close()
