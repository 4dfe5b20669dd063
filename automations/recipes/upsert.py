"""``quo.upsert_contact``: one action in the recipe, three steps in the run.

Quo enforces no uniqueness on contacts, so "create" run twice makes two contacts. The upsert is
keyed on ``externalId`` and compiles into three ordinary steps, each recorded in the audit with
its own request and outcome:

    <id>:find    quo.find_contacts   GET /v1/contacts?externalIds=<externalId>&maxResults=1
    <id>:update  quo.update_contact  PATCH /v1/contacts/{first match's id}   if one was found
    <id>:create  quo.create_contact  POST /v1/contacts                       if none was found

``update`` and ``create`` read ``<id>:find`` (``Action.reads_steps``), so they are rendered after
it has answered; whichever of them ran is also the response of ``<id>`` itself, so later steps
read ``/@<id>.data.id`` whatever happened. The upsert's own ``only_run_if`` gates the lookup, and
a skipped lookup skips both writes.

A race: two runs for one ``externalId`` at the same moment can both find nothing and both
create. The runner serializes the runs of a recipe that upserts by the upsert's key
(``upsert_key``), so within one recipe this cannot happen; two *different* recipes upserting the
same key at the same moment still can (docs/recipes.md says so).
"""

from __future__ import annotations

from typing import Any

from automations.conditions import STEP_FIELD, Condition, compile_expression
from automations.model import Action
from automations.templates import (
    ListTemplate,
    Literal,
    MapTemplate,
    RenderContext,
    StepRef,
)

__all__ = ["UPSERT", "expand_upsert", "upsert_key"]

UPSERT = "quo.upsert_contact"


def expand_upsert(
    step_id: str, params: MapTemplate, condition: Condition | None, line: int, reads: frozenset[str]
) -> tuple[Action, ...]:
    """The three steps of an upsert written as ``step_id`` (see the module docstring)."""
    find_id = f"{step_id}:find"
    fields = dict(params.items)
    external = fields.get("externalId", Literal(None))
    find = MapTemplate((("externalIds", ListTemplate((external,))), ("maxResults", Literal(1))))
    found = f'"{STEP_FIELD}{find_id}"'
    update_if = compile_expression(f"{found} != null && length({found}.data || `[]`) > `0`")
    create_if = compile_expression(f"{found} != null && length({found}.data || `[]`) == `0`")
    match_id = StepRef(find_id, compile_expression("data[0].id"))
    update = MapTemplate((("id", match_id), *params.items))
    needs = frozenset({find_id})
    return (
        Action("quo.find_contacts", find_id, find, condition, line, reads),
        Action("quo.update_contact", f"{step_id}:update", update, update_if, line, needs, step_id),
        Action("quo.create_contact", f"{step_id}:create", params, create_if, line, needs, step_id),
    )


def upsert_key(actions: tuple[Action, ...], row: Any) -> str | None:
    """The ``externalId`` the first upsert of ``actions`` is keyed on for ``row`` (rendered
    from the row alone), or ``None`` when the recipe upserts nothing or the key needs more than
    the row."""
    for action in actions:
        if action.kind != "quo.find_contacts" or not action.id.endswith(":find"):
            continue
        params = action.params
        ids = dict(params.items).get("externalIds") if isinstance(params, MapTemplate) else None
        if not isinstance(ids, ListTemplate) or not ids.items:
            return None
        try:
            value = ids.items[0].render(RenderContext(row if isinstance(row, dict) else {}, {}, {}))
        except Exception:  # an unset ${NAME} and the like: no key, no ordering
            return None
        return None if value is None else str(value)
    return None
