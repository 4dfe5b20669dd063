"""A look at a table from the runner's side (``TableLook``): runs recorded batch by batch, in
store calls of at most ``ENQUEUE_RUNS``, each batch committed after its runs, and the flood brake
deciding before anything of a flood is recorded ``pending``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from automations.model import Recipe
from automations.recipes.compiler import load_recipe_text
from automations.records import RunRecord, RunStatus
from automations.runner.sources import ENQUEUE_RUNS, TableLook, table_scope
from automations.stores import MemoryStore
from automations.triggers.table import TableReader


def _recipe(directory: Path, trigger: str) -> Recipe:
    text = (
        f"name: leads\ntrigger:\n  table: {{path: leads.csv, key: id, {trigger}}}\n"
        'actions:\n  - http.request: {method: POST, url: "https://x.example/{/id}/{/name}"}\n'
    )
    result = load_recipe_text(text, "leads.yaml", base_dir=directory, env={})
    assert result.recipe is not None, result.diagnostics
    return result.recipe


def _rows(start: int, stop: int, name: str = "n") -> str:
    return "".join(f"u{i:07d},{name}{i:07d}\n" for i in range(start, stop))


class Inbox:
    """The runner's ``accept_many`` as the look sees it: records each call."""

    def __init__(self) -> None:
        self.calls: list[list[RunRecord]] = []

    def __call__(self, items: Sequence[tuple[RunRecord, str | None]]) -> object:
        self.calls.append([run for run, _ in items])
        return None

    def statuses(self) -> dict[RunStatus, int]:
        counts: dict[RunStatus, int] = {}
        for call in self.calls:
            for run in call:
                counts[run.status] = counts.get(run.status, 0) + 1
        return counts


def _look(tmp_path: Path, trigger: str, **kw: int) -> tuple[TableLook, Inbox, MemoryStore]:
    recipe = _recipe(tmp_path, trigger)
    store = MemoryStore()
    assert recipe.trigger.kind == "table"
    spec = recipe.trigger.table  # type: ignore[union-attr]
    inbox = Inbox()
    reader = TableReader(spec, store, table_scope(recipe, spec))
    return TableLook(recipe, reader, inbox, **kw), inbox, store


def test_a_first_activation_of_30k_rows_is_recorded_in_small_calls(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("id,name\n" + _rows(0, 30_000))
    look, inbox, _ = _look(tmp_path, "existing_rows: run, flood_limit: 10")
    look(False)
    assert inbox.statuses() == {RunStatus.PENDING: 30_000}  # asked for: never held
    assert max(len(call) for call in inbox.calls) == ENQUEUE_RUNS
    assert [r.event_key for r in inbox.calls[0][:2]] == ["u0000000", "u0000001"]
    assert look.reader.activated
    look(False)
    assert sum(len(call) for call in inbox.calls) == 30_000


def test_an_append_of_20k_rows_is_held_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("id,name\n")
    look, inbox, _ = _look(tmp_path, "existing_rows: skip")
    look(False)
    with open(path, "a") as handle:
        handle.write(_rows(0, 20_000))
    with caplog.at_level(logging.WARNING, logger="automations.runner"):
        look(False)
    assert inbox.statuses() == {RunStatus.HELD: 20_000}
    assert [r.message for r in caplog.records] == [
        "recipe leads: one look at leads.csv found 20000 rows to run, more than its flood_limit "
        "of 100: recorded as held, nothing sent; `automations approve --recipe leads` runs "
        "them, `automations discard --recipe leads` drops them"
    ]


def test_few_runs_among_many_marks_run_and_the_rest_of_a_flood_is_held(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rewrite that changes a column every row's run reads (the recipe does not run on
    updates: new marks, no runs), with 50 new rows near the start and 100 at the end: the marks
    kept back pass ``keep_back`` before the brake can tell, so the first 50 are recorded
    pending, the 100 found after the limit was passed held."""
    path = tmp_path / "leads.csv"
    path.write_text("id,name\n" + _rows(0, 30_000))
    look, inbox, _ = _look(tmp_path, "existing_rows: skip", keep_back=1_000)
    look(False)
    assert inbox.calls == []
    new = tmp_path / "leads.tmp"
    new.write_text(
        "id,name\n" + _rows(100_000, 100_050) + _rows(0, 30_000, "m") + _rows(200_000, 200_100)
    )
    new.replace(path)
    with caplog.at_level(logging.WARNING, logger="automations.runner"):
        look(False)
    assert inbox.statuses() == {RunStatus.PENDING: 50, RunStatus.HELD: 100}
    assert (
        "found 150 rows to run, more than its flood_limit of 100: the last 100 recorded as "
        "held, nothing sent for them (the first 50 were found among more than 1000 rows read "
        "before the brake could tell, and run)" in caplog.text
    )


def test_a_look_the_brake_cannot_hold_keeps_nothing_back(tmp_path: Path) -> None:
    """``existing_rows: run`` (and ``flood_limit: 0``): each batch is recorded as it is read,
    so a first look at a large table holds one batch of runs in memory, not 50,000 marks'."""

    class Watching(Inbox):
        def __init__(self, reader: TableReader) -> None:
            super().__init__()
            self.reader = reader
            self.waiting: list[int] = []

        def __call__(self, items: Sequence[tuple[RunRecord, str | None]]) -> object:
            self.waiting.append(len(self.reader._pending))  # batches read, not recorded yet
            return super().__call__(items)

    for trigger in ("existing_rows: run, flood_limit: 10", "existing_rows: run, flood_limit: 0"):
        (tmp_path / "leads.csv").write_text("id,name\n" + _rows(0, 10_000))
        look, _, _ = _look(tmp_path, trigger)
        inbox = Watching(look.reader)
        look.enqueue = inbox
        look(False)
        assert inbox.statuses() == {RunStatus.PENDING: 10_000}
        assert max(inbox.waiting) == 1  # only the batch being recorded (of 6)
