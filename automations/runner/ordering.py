"""Order keys: runs that share one execute one at a time, in the order recorded.

A table row's runs share ``recipe:rowkey`` (an updated row is a new run of the same row), a
schedule's runs over a table row ``recipe:rowkey`` too, and the runs of a recipe that upserts a
contact share the upsert's key. The key is stored with the run (``runs.order_key``), so every
node claims a key's runs in order; the dispatcher keeps the same rule among the runs in memory.
"""

from __future__ import annotations

from automations.execution.rows import row_for
from automations.model import Recipe
from automations.recipes.upsert import upsert_key
from automations.records import RunRecord, TriggerKind

__all__ = ["order_key_for", "source_order_key"]

_HEX = frozenset("0123456789abcdef")


def order_key_for(run: RunRecord, recipe: Recipe | None) -> str | None:
    """The order key of ``run``: runs sharing one execute one at a time, in the order recorded.

    A recipe with a ``quo.upsert_contact`` orders its runs by the upsert's key (its
    ``externalId`` for the run's row): two runs for one contact never look it up at the same
    time, so they cannot both find nothing and both create it. Other runs keep their source's key
    (the row of a table, the row and fire time of a schedule)."""
    if recipe is not None and any(a.response_as for a in recipe.actions):
        try:
            key = upsert_key(recipe.actions, row_for(recipe, run.event))
        except Exception:  # a row its columns cannot be computed over: no upsert key
            key = None
        if key is not None:
            return f"{run.recipe}:upsert:{key}"
    return source_order_key(run)


def source_order_key(run: RunRecord) -> str | None:
    """The order key the run's source gave it (``sources``), rebuilt from its event key."""
    if run.trigger is TriggerKind.TABLE:
        # an updated row's event key is "<row key>@<16 hex digits>"; row keys (e-mail
        # addresses) may hold "@" themselves, so only that exact suffix is cut
        key, at, digest = run.event_key.rpartition("@")
        if not (at and len(digest) == 16 and all(c in _HEX for c in digest)):
            key = run.event_key
        return f"{run.recipe}:{key}"
    if run.trigger is TriggerKind.SCHEDULE and ":" in run.event_key[20:]:
        return f"{run.recipe}:{run.event_key[21:]}"
    return None
