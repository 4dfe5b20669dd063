"""The RunStore / StateStore contract, run over every store."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from automations.errors import StoreError
from automations.ports import StateStore
from automations.records import AuditEntry, RunFilter, RunRecord, RunStatus, StepStatus
from automations.stores import MemoryStore, PostgresStore, SQLiteStore
from automations.stores.codec import JSON_TEXT_LIMIT, TRUNCATED_KEY, dump_json
from tests.postgres import emptied_store_url
from tests.stores.factories import T0, FakeClock, make_run, make_step

Store = MemoryStore | SQLiteStore | PostgresStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("sqlite", marks=pytest.mark.integration),
        pytest.param("postgres", marks=pytest.mark.integration),
    ],
)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    s: Store
    if request.param == "memory":
        s = MemoryStore(clock=clock)
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "runs.db", clock=clock)
    else:
        s = PostgresStore(emptied_store_url(), clock=clock)
    yield s
    s.close()


def ids(runs: list[RunRecord]) -> list[str]:
    return [r.id for r in runs]


# -- enqueue ---------------------------------------------------------------------------------


def test_enqueue_records_a_new_run(store: Store) -> None:
    run = make_run("r1", event={"email": "a@example.com", "tags": ["x"]})
    stored, new = store.enqueue(run)
    assert (stored, new) == (run, True)
    assert store.get_run("r1") == run
    assert store.count() == 1


def test_enqueue_of_the_same_event_returns_the_existing_run(store: Store) -> None:
    store.enqueue(make_run("r1", event_key="evt-1"))
    store.put_step(make_step("r1"))
    again, new = store.enqueue(make_run("r2", event_key="evt-1", created_at=T0 + 5))
    assert new is False
    assert again.id == "r1"
    assert again.steps == (make_step("r1"),)
    assert store.count() == 1
    assert store.find_run("welcome", "evt-1") == again


def test_the_same_event_key_in_another_recipe_is_another_run(store: Store) -> None:
    store.enqueue(make_run("r1", recipe="a", event_key="evt-1"))
    _, new = store.enqueue(make_run("r2", recipe="b", event_key="evt-1"))
    assert new is True
    assert store.count() == 2


def test_enqueue_refuses_a_second_run_with_the_same_id(store: Store) -> None:
    store.enqueue(make_run("r1", event_key="a"))
    with pytest.raises(StoreError, match="a run with id r1 exists already"):
        store.enqueue(make_run("r1", event_key="b"))
    assert store.count() == 1


def test_enqueue_many_dedupes_within_and_across_batches(store: Store) -> None:
    store.enqueue(make_run("r0", event_key="k0"))
    results = store.enqueue_many(
        [
            make_run("r1", event_key="k1"),
            make_run("r2", event_key="k0"),
            make_run("r3", event_key="k1"),
        ]
    )
    assert [(run.id, new) for run, new in results] == [("r1", True), ("r0", False), ("r1", False)]
    assert store.count() == 2


def test_enqueue_stores_steps_given_with_the_run(store: Store) -> None:
    run = make_run("r1", steps=(make_step("r1", 1), make_step("r1", 0)))
    store.enqueue(run)
    assert [s.index for s in store.get_run("r1").steps] == [0, 1]


def test_find_run_of_an_unknown_event_is_none(store: Store) -> None:
    assert store.find_run("welcome", "nope") is None


# -- claim -----------------------------------------------------------------------------------


def test_claim_marks_a_pending_run_running(store: Store, clock: FakeClock) -> None:
    store.enqueue(make_run("r1"))
    claimed = store.claim("r1", "hash-1")
    assert claimed is not None
    assert (claimed.status, claimed.recipe_hash, claimed.started_at) == (
        RunStatus.RUNNING,
        "hash-1",
        clock.now,
    )
    assert store.get_run("r1") == claimed


def test_claim_resumes_a_running_run_with_its_steps(store: Store, clock: FakeClock) -> None:
    store.enqueue(make_run("r1"))
    store.claim("r1", "hash-1")
    store.put_step(make_step("r1", 0, status=StepStatus.SENDING))
    clock.now += 60
    resumed = store.claim("r1", "hash-2")
    assert resumed is not None
    assert resumed.status is RunStatus.RUNNING
    assert resumed.recipe_hash == "hash-2"
    # The first start is kept: the run's duration counts from when it really began.
    assert resumed.started_at == clock.now - 60
    assert [s.status for s in resumed.steps] == [StepStatus.SENDING]


@pytest.mark.parametrize(
    "status",
    [
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.SKIPPED,
        RunStatus.UNKNOWN,
        RunStatus.HELD,
        RunStatus.DISCARDED,
    ],
)
def test_claim_of_a_final_run_is_none_and_changes_nothing(store: Store, status: RunStatus) -> None:
    store.enqueue(make_run("r1", status=status))
    before = store.get_run("r1")
    assert store.claim("r1", "hash-2") is None
    assert store.get_run("r1") == before


def test_claim_of_an_unknown_run_raises(store: Store) -> None:
    with pytest.raises(StoreError, match="no run with id nope"):
        store.claim("nope", "hash")


# -- update_run ------------------------------------------------------------------------------


def test_update_run_sets_fields(store: Store) -> None:
    store.enqueue(make_run("r1"))
    store.update_run(
        "r1",
        status=RunStatus.FAILED,
        row={"email": "a@example.com", "n": (1, 2)},
        condition=False,
        dry_run=True,
        error="send: 400 bad phone",
        finished_at=T0 + 9,
        recipe_hash="h",
    )
    run = store.get_run("r1")
    assert run == dataclasses.replace(
        make_run("r1"),
        status=RunStatus.FAILED,
        row={"email": "a@example.com", "n": [1, 2]},
        condition=False,
        dry_run=True,
        error="send: 400 bad phone",
        finished_at=T0 + 9,
        recipe_hash="h",
    )


def test_update_run_can_clear_a_field(store: Store) -> None:
    store.enqueue(make_run("r1"))
    store.update_run("r1", error="boom", condition=True)
    store.update_run("r1", error=None, condition=None)
    run = store.get_run("r1")
    assert (run.error, run.condition) == (None, None)


def test_update_run_of_an_unknown_run_raises(store: Store) -> None:
    with pytest.raises(StoreError, match="no run with id nope"):
        store.update_run("nope", status=RunStatus.FAILED)
    with pytest.raises(StoreError, match="no run with id nope"):
        store.update_run("nope")


def test_update_run_rejects_unknown_fields_and_wrong_enum_types(store: Store) -> None:
    store.enqueue(make_run("r1"))
    with pytest.raises(TypeError, match=r"unexpected run field.*colour"):
        store.update_run("r1", colour="red")
    with pytest.raises(TypeError, match=r"unexpected run field.*steps"):
        store.update_run("r1", steps=())
    with pytest.raises(TypeError, match="needs a RunStatus"):
        store.update_run("r1", status="failed")
    assert store.get_run("r1") == make_run("r1")


# -- put_step --------------------------------------------------------------------------------


def test_put_step_inserts_then_replaces_by_index(store: Store) -> None:
    store.enqueue(make_run("r1"))
    store.put_step(make_step("r1", 1, status=StepStatus.SENDING))
    store.put_step(make_step("r1", 0))
    final = make_step("r1", 1, status=StepStatus.FAILED, error="400", response_body={"e": 1})
    store.put_step(final)
    assert store.get_run("r1").steps == (make_step("r1", 0), final)


def test_put_step_of_an_unknown_run_raises(store: Store) -> None:
    with pytest.raises(StoreError, match="no run with id nope"):
        store.put_step(make_step("nope"))


def test_oversized_json_is_cut_with_a_marker(store: Store) -> None:
    store.enqueue(make_run("r1"))
    body = {"items": ["é" * 50] * 400}
    store.put_step(make_step("r1", response_body=body))
    stored = store.get_run("r1").steps[0].response_body
    original = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(original) == 41_211  # é is two bytes in UTF-8
    assert stored[TRUNCATED_KEY] == len(original)
    assert stored["head"].startswith('{"items":["éééé')
    assert len((dump_json(stored) or "").encode()) <= JSON_TEXT_LIMIT


def test_events_and_rows_are_stored_whole(store: Store) -> None:
    # an event is what a run executes on: it is never cut, whatever its size (the intake bounds
    # it: --max-body for webhooks, the table file limits for rows)
    notes = "n" * 9_000
    event = {"Email": "a@example.com", "Notes": notes, "items": ["é" * 50] * 400}
    row = {"Email": "a@example.com", "Notes": notes}
    stored, _ = store.enqueue(dataclasses.replace(make_run("r1", event=event), row=row))
    assert stored.event == event and stored.row == row
    back = store.get_run("r1")
    assert back.event == event and back.row == row
    store.update_run("r1", row={"Notes": notes + "!"})
    assert store.get_run("r1").row == {"Notes": notes + "!"}
    [pending] = store.unfinished()
    assert pending.event == event


def test_json_round_trips_unicode_and_nesting(store: Store) -> None:
    event = {"name": "Zoë 😀", "nested": {"a": [1, 2.5, None, True]}, "n": 0}
    store.enqueue(make_run("r1", event=event))
    assert store.get_run("r1").event == event


def test_values_that_are_not_json_are_kept_as_text(store: Store) -> None:
    when = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
    event = {"at": when, "amount": Decimal("9.50"), "odd": "\ud800", 1: "int key"}
    store.enqueue(make_run("r1", event=event))
    assert store.get_run("r1").event == {
        "at": "2025-06-01 12:30:00+00:00",
        "amount": "9.50",
        "odd": "\ud800",
        "1": "int key",
    }


# -- get_run ---------------------------------------------------------------------------------


def test_get_run_accepts_a_unique_prefix(store: Store) -> None:
    for run_id in ("abc123", "abd456", "b00000"):
        store.enqueue(make_run(run_id))
    assert store.get_run("abc").id == "abc123"
    assert store.get_run("b").id == "b00000"
    with pytest.raises(StoreError, match=r"ambiguous run id prefix ab$"):
        store.get_run("ab")
    with pytest.raises(StoreError, match=r"no run with id zz$"):
        store.get_run("zz")
    with pytest.raises(StoreError, match=r"no run with id abc1234$"):
        store.get_run("abc1234")


def test_get_run_prefers_an_exact_id_to_a_prefix(store: Store) -> None:
    store.enqueue(make_run("abc"))
    store.enqueue(make_run("abcd"))
    assert store.get_run("abc").id == "abc"


def test_get_run_with_steps_in_index_order(store: Store) -> None:
    store.enqueue(make_run("r1"))
    for index in (2, 0, 1):
        store.put_step(make_step("r1", index))
    assert [s.index for s in store.get_run("r1").steps] == [0, 1, 2]


# -- list_runs -------------------------------------------------------------------------------


def _history(store: Store) -> None:
    """r1..r6, one second apart; r3 and r4 share a created_at (r4 enqueued later)."""
    spec = [
        ("r1", "a", 0, RunStatus.SUCCEEDED),
        ("r2", "b", 1, RunStatus.FAILED),
        ("r3", "a", 2, RunStatus.PENDING),
        ("r4", "a", 2, RunStatus.FAILED),
        ("r5", "b", 4, RunStatus.SUCCEEDED),
        ("r6", "a", 5, RunStatus.RUNNING),
    ]
    for run_id, recipe, offset, status in spec:
        store.enqueue(make_run(run_id, recipe=recipe, created_at=T0 + offset, status=status))
        store.put_step(make_step(run_id, 0))


def test_list_runs_is_newest_first_with_steps(store: Store) -> None:
    _history(store)
    runs = store.list_runs(RunFilter())
    assert ids(runs) == ["r6", "r5", "r4", "r3", "r2", "r1"]
    assert all(r.steps == (make_step(r.id, 0),) for r in runs)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (RunFilter(recipe="a"), ["r6", "r4", "r3", "r1"]),
        (RunFilter(status=RunStatus.FAILED), ["r4", "r2"]),
        (RunFilter(recipe="a", status=RunStatus.FAILED), ["r4"]),
        (RunFilter(since=T0 + 2), ["r6", "r5", "r4", "r3"]),
        (RunFilter(limit=2), ["r6", "r5"]),
        (RunFilter(recipe="b", since=T0 + 1, limit=1), ["r5"]),
        (RunFilter(recipe="nope"), []),
        (RunFilter(limit=0), []),
        (RunFilter(until=T0 + 2), ["r2", "r1"]),
        (RunFilter(since=T0 + 1, until=T0 + 4), ["r4", "r3", "r2"]),
        (RunFilter(before_id="r4"), ["r3", "r2", "r1"]),
        (RunFilter(before_id="r4", limit=2), ["r3", "r2"]),
        (RunFilter(recipe="a", before_id="r4"), ["r3", "r1"]),
        (RunFilter(after_id="r4"), ["r6", "r5"]),
        (RunFilter(after_id="r2", before_id="r5"), ["r4", "r3"]),
        (RunFilter(before_id="gone"), []),
        (RunFilter(after_id="gone"), []),
    ],
)
def test_list_runs_filters(store: Store, flt: RunFilter, expected: list[str]) -> None:
    _history(store)
    assert ids(store.list_runs(flt)) == expected


def test_list_runs_hides_skipped_runs_when_asked(store: Store) -> None:
    _history(store)
    store.enqueue(make_run("r7", created_at=T0 + 6, status=RunStatus.SKIPPED))
    assert ids(store.list_runs(RunFilter(limit=3))) == ["r7", "r6", "r5"]
    assert ids(store.list_runs(RunFilter(limit=3, hide_skipped=True))) == ["r6", "r5", "r4"]


def test_list_runs_orders_by_creation_time_then_as_recorded(store: Store) -> None:
    _history(store)
    store.enqueue(make_run("r7", recipe="b", created_at=T0 + 3))  # recorded last, created before r5
    assert ids(store.list_runs(RunFilter())) == ["r6", "r5", "r7", "r4", "r3", "r2", "r1"]
    # the console's cursors follow the same order
    assert ids(store.list_runs(RunFilter(before_id="r5"))) == ["r7", "r4", "r3", "r2", "r1"]
    assert ids(store.list_runs(RunFilter(after_id="r4"))) == ["r6", "r5", "r7"]
    assert ids(store.list_runs(RunFilter(after_id="r7", before_id="r6"))) == ["r5"]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (RunFilter(until=T0 + 2), ["r2", "r1"]),
        (RunFilter(since=T0 + 1, until=T0 + 5), ["r5", "r4", "r3", "r2"]),
        (RunFilter(recipe="a", status=RunStatus.FAILED, since=T0, until=T0 + 3), ["r4"]),
        (RunFilter(status=RunStatus.SUCCEEDED, until=T0 + 4), ["r1"]),
    ],
)
def test_list_runs_in_a_time_range(store: Store, flt: RunFilter, expected: list[str]) -> None:
    _history(store)
    assert ids(store.list_runs(flt)) == expected


@pytest.mark.parametrize(
    "flt",
    [RunFilter(limit=2), RunFilter(limit=1, recipe="a"), RunFilter(limit=4), RunFilter(limit=6)],
)
def test_pages_follow_each_other_through_the_cursor(store: Store, flt: RunFilter) -> None:
    """Keyset pages: each run once, in the order of one whole listing; a run recorded while
    paging (newest) shifts nothing; the last page has no cursor."""
    _history(store)
    whole = ids(store.list_runs(dataclasses.replace(flt, limit=100)))
    seen: list[str] = []
    page = store.list_runs_page(flt)
    store.enqueue(make_run("late", recipe="a", created_at=T0 + 9))
    while True:
        assert 0 < len(page.runs) <= flt.limit
        seen += ids(page.runs)
        if page.next is None:
            break
        page = store.list_runs_page(dataclasses.replace(flt, before=page.next))
    assert seen == whole
    assert store.list_runs_page(dataclasses.replace(flt, limit=100)).next is None


def test_a_page_cursor_separates_runs_created_in_the_same_instant(store: Store) -> None:
    for i in range(5):
        store.enqueue(make_run(f"t{i}", created_at=T0))
    first = store.list_runs_page(RunFilter(limit=2))
    assert ids(first.runs) == ["t4", "t3"]
    assert first.next is not None
    second = store.list_runs_page(RunFilter(limit=2, before=first.next))
    assert ids(second.runs) == ["t2", "t1"]
    assert second.next is not None
    last = store.list_runs_page(RunFilter(limit=2, before=second.next))
    assert (ids(last.runs), last.next) == (["t0"], None)


def test_list_runs_by_key(store: Store) -> None:
    """``--key``: the runs of one row or event, whatever produced them, and no other."""
    import dataclasses

    from automations.records import TriggerKind

    def add(run_id: str, key: str, trigger: TriggerKind = TriggerKind.TABLE) -> None:
        run = make_run(run_id, recipe=f"recipe-{run_id}", event_key=key)
        store.enqueue(dataclasses.replace(run, trigger=trigger))

    add("r1", "ada@example.com")
    add("r2", "ada@example.com@0123456789abcdef")  # the row, updated
    add("r3", "2026-11-30T07:00:00Z:ada@example.com", TriggerKind.SCHEDULE)
    add("r4", "ada@example.com.au")
    add("r5", "ada@example.com@not-a-hash-at-all")
    add("r6", "2026-11-30T07:00:00Z:ada@example.com", TriggerKind.WEBHOOK)
    add("r7", "evt_1", TriggerKind.WEBHOOK)
    assert ids(store.list_runs(RunFilter(key="ada@example.com"))) == ["r3", "r2", "r1"]
    assert ids(store.list_runs(RunFilter(key="evt_1"))) == ["r7"]
    assert ids(store.list_runs(RunFilter(key="ada@example.com", recipe="recipe-r2"))) == ["r2"]
    assert ids(store.list_runs(RunFilter(key="ada"))) == []


def test_steps_done_since_counts_what_ended_in_the_window(store: Store) -> None:
    """``status``'s "sent in the last minute": steps that ended at or after the time given,
    whatever their outcome, but not skipped or still in flight."""
    import dataclasses

    def add(run_id: str, recipe: str, ends: list[tuple[StepStatus, float | None]]) -> None:
        store.enqueue(make_run(run_id, recipe=recipe))
        for index, (status, finished) in enumerate(ends):
            step = make_step(run_id, index, status=status)
            store.put_step(dataclasses.replace(step, started_at=T0 + 95, finished_at=finished))

    add("r1", "a", [(StepStatus.SUCCEEDED, T0 + 100), (StepStatus.FAILED, T0 + 101)])
    add("r2", "a", [(StepStatus.SUCCEEDED, T0 + 99.9), (StepStatus.UNKNOWN, T0 + 130)])
    add("r3", "b", [(StepStatus.SKIPPED, T0 + 120), (StepStatus.SENDING, None)])
    add("r4", "b", [(StepStatus.DRY_RUN, T0 + 140)])
    found = sorted(store.steps_done_since(T0 + 100))
    assert found == [
        ("a", "loops.send_event", "r1", T0 + 100),
        ("a", "loops.send_event", "r1", T0 + 101),
        ("a", "loops.send_event", "r2", T0 + 130),
        ("b", "loops.send_event", "r4", T0 + 140),
    ]
    assert store.steps_done_since(T0 + 141) == []


def test_count_by_status(store: Store) -> None:
    _history(store)
    assert store.count() == 6
    assert store.count(RunStatus.FAILED) == 2
    assert store.count(RunStatus.UNKNOWN) == 0


def test_unfinished_is_pending_and_running_in_the_order_recorded(store: Store) -> None:
    _history(store)
    store.enqueue(make_run("r0", created_at=T0 - 1))  # recorded last, whatever its time says
    runs = store.unfinished()
    assert ids(runs) == ["r3", "r6", "r0"]
    assert runs[0].steps == (make_step("r3", 0),)


def test_held_runs_are_not_unfinished(store: Store) -> None:
    store.enqueue(make_run("p1"))
    store.enqueue(make_run("h1", status=RunStatus.HELD))
    assert ids(store.unfinished()) == ["p1"]


# -- held runs -------------------------------------------------------------------------------


def _held(store: Store) -> None:
    for run_id, recipe in [("h1", "a"), ("h2", "a"), ("h3", "b"), ("p1", "a")]:
        status = RunStatus.PENDING if run_id.startswith("p") else RunStatus.HELD
        store.enqueue(make_run(run_id, recipe=recipe, status=status))


def test_count_by_recipe(store: Store) -> None:
    _held(store)
    assert store.count_by_recipe(RunStatus.HELD) == {"a": 2, "b": 1}
    assert store.count_by_recipe(RunStatus.PENDING) == {"a": 1}
    assert store.count_by_recipe(RunStatus.FAILED) == {}


def test_end_hold_releases_one_recipes_held_runs_to_pending(store: Store) -> None:
    _held(store)
    assert store.end_hold("a", RunStatus.PENDING, now=T0 + 9) == 2
    assert ids(store.unfinished()) == ["h1", "h2", "p1"]
    assert store.get_run("h1").finished_at is None
    assert store.get_run("h3").status is RunStatus.HELD
    assert store.end_hold("a", RunStatus.PENDING, now=T0 + 9) == 0


def test_end_hold_discards_with_the_reason_and_time(store: Store) -> None:
    _held(store)
    assert store.end_hold("a", RunStatus.DISCARDED, now=T0 + 9, error="discarded by hand") == 2
    run = store.get_run("h2")
    assert (run.status, run.error, run.finished_at) == (
        RunStatus.DISCARDED,
        "discarded by hand",
        T0 + 9,
    )
    assert store.get_run("p1").status is RunStatus.PENDING
    assert store.count_by_recipe(RunStatus.HELD) == {"b": 1}


def test_end_hold_refuses_other_statuses(store: Store) -> None:
    with pytest.raises(ValueError, match="not succeeded"):
        store.end_hold("a", RunStatus.SUCCEEDED, now=T0)


def test_unfinished_after_pages_one_recipes_backlog_in_the_order_recorded(store: Store) -> None:
    for i in range(7):
        store.enqueue(make_run(f"a{i}", recipe="a", created_at=T0 - i))
        store.enqueue(make_run(f"b{i}", recipe="b"))
    store.update_run("a1", status=RunStatus.SUCCEEDED)
    store.update_run("a2", status=RunStatus.RUNNING)
    first = store.unfinished_after("a", None, 3)
    assert ids(first) == ["a0", "a2", "a3"]
    assert ids(store.unfinished_after("a", "a3", 3)) == ["a4", "a5", "a6"]
    assert ids(store.unfinished_after("a", "a6", 3)) == []
    # a run that finished meanwhile still marks the place
    store.update_run("a3", status=RunStatus.FAILED)
    assert ids(store.unfinished_after("a", "a3", 2)) == ["a4", "a5"]
    assert ids(store.unfinished_after("c", None, 3)) == []
    store.enqueue(make_run("a7", recipe="a", status=RunStatus.HELD))
    assert ids(store.unfinished_after("a", "a6", 3)) == []


def test_unfinished_counts_per_recipe(store: Store) -> None:
    for i in range(3):
        store.enqueue(make_run(f"a{i}", recipe="a"))
    store.enqueue(make_run("b0", recipe="b"))
    store.enqueue(make_run("c0", recipe="c"))
    store.update_run("a0", status=RunStatus.RUNNING)
    store.update_run("c0", status=RunStatus.SKIPPED)
    store.enqueue(make_run("h0", recipe="b", status=RunStatus.HELD))  # waits for a person
    assert store.unfinished_counts() == {"a": 3, "b": 1}


# -- prune -----------------------------------------------------------------------------------


def test_prune_deletes_final_runs_past_their_window(store: Store) -> None:
    now, day = T0 + 100 * 86400, 86400.0
    ages = {
        "ok-old": (RunStatus.SUCCEEDED, 8),
        "ok-new": (RunStatus.SUCCEEDED, 6),
        "skip-old": (RunStatus.SKIPPED, 8),
        "fail-old": (RunStatus.FAILED, 31),
        "fail-mid": (RunStatus.FAILED, 8),
        "unknown-old": (RunStatus.UNKNOWN, 31),
        "unknown-mid": (RunStatus.UNKNOWN, 29),
        "pending-old": (RunStatus.PENDING, 90),
        "running-old": (RunStatus.RUNNING, 90),
        "held-old": (RunStatus.HELD, 90),
        "discarded-old": (RunStatus.DISCARDED, 8),
    }
    for run_id, (status, age_days) in ages.items():
        store.enqueue(make_run(run_id, status=status, created_at=now - age_days * day))
        store.put_step(make_step(run_id))
    deleted = store.prune(now=now, keep_succeeded_s=7 * day, keep_failed_s=30 * day)
    assert deleted == 5
    left = sorted(ids(store.list_runs(RunFilter(limit=100))))
    assert left == [
        "fail-mid",
        "held-old",
        "ok-new",
        "pending-old",
        "running-old",
        "unknown-mid",
    ]
    with pytest.raises(StoreError, match="no run with id ok-old"):
        store.get_run("ok-old")
    # The event of a pruned run can be recorded again, steps and all.
    _, new = store.enqueue(make_run("again", event_key="key-ok-old"))
    assert new is True
    assert store.get_run("again").steps == ()


def test_prune_deletes_in_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prune larger than a batch takes several commits and deletes exactly what one would."""
    import automations.stores.postgres as postgres_store
    import automations.stores.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "PRUNE_BATCH", 3)
    monkeypatch.setattr(postgres_store, "PRUNE_BATCH", 3)
    now, day = T0 + 100 * 86400, 86400.0
    for i in range(10):
        store.enqueue(make_run(f"old{i}", status=RunStatus.SUCCEEDED, created_at=now - 9 * day))
        store.put_step(make_step(f"old{i}"))
    store.enqueue(make_run("new", status=RunStatus.SUCCEEDED, created_at=now - day))
    store.put_step(make_step("new"))
    assert store.prune(now=now, keep_succeeded_s=7 * day, keep_failed_s=30 * day) == 10
    assert ids(store.list_runs(RunFilter(limit=100))) == ["new"]
    assert store.get_run("new").steps == (make_step("new"),)


def test_prune_with_nothing_to_do(store: Store) -> None:
    store.enqueue(make_run("r1", status=RunStatus.SUCCEEDED))
    assert store.prune(now=T0, keep_succeeded_s=1, keep_failed_s=1) == 0
    assert store.count() == 1


# -- transaction -----------------------------------------------------------------------------


def test_transaction_commits_its_writes_together(store: Store) -> None:
    with store.transaction():
        store.enqueue(make_run("r1"))
        with store.transaction():
            store.put_step(make_step("r1"))
        store.set_state("table:welcome", [("k", "v")])
    assert store.get_run("r1").steps == (make_step("r1"),)
    assert store.get_state("table:welcome", "k") == "v"


def test_transaction_rolls_back_on_error(store: Store) -> None:
    store.enqueue(make_run("r0"))
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.enqueue(make_run("r1"))
        store.put_step(make_step("r0"))
        store.update_run("r0", status=RunStatus.FAILED)
        store.set_state("s", [("k", "v")])
        raise RuntimeError("boom")
    assert ids(store.list_runs(RunFilter())) == ["r0"]
    assert store.get_run("r0") == make_run("r0")
    assert store.all_state("s") == {}


# -- replay chain, resolutions and the audit ---------------------------------------------------


def test_a_run_points_at_its_replay_and_back(store: Store) -> None:
    store.enqueue(make_run("r1", status=RunStatus.FAILED))
    store.enqueue(dataclasses.replace(make_run("r2", event_key="key-r1#replay"), replay_of="r1"))
    store.update_run("r1", replayed_as="r2")
    assert (store.get_run("r1").replayed_as, store.get_run("r2").replay_of) == ("r2", "r1")
    [newest, oldest] = store.list_runs(RunFilter())
    assert (newest.replay_of, oldest.replayed_as) == ("r1", "r2")


def test_a_step_keeps_how_a_person_resolved_it(store: Store) -> None:
    store.enqueue(make_run("r1"))
    store.put_step(make_step("r1", 0, status=StepStatus.UNKNOWN))
    resolved = dataclasses.replace(
        make_step("r1", 0, status=StepStatus.SUCCEEDED), resolution="sent"
    )
    store.put_step(resolved)
    assert store.get_run("r1").steps == (resolved,)


def test_audit_entries_read_back_oldest_first(store: Store) -> None:
    entries = [
        AuditEntry(at=T0 + i, actor="ada", action="resolve", run_id=f"r{i % 2}", step_index=i)
        for i in range(5)
    ]
    for entry in entries:
        store.add_audit(entry)
    store.add_audit(AuditEntry(at=T0 + 9, actor="bob", action="replay", detail={"n": [1, "é"]}))
    assert store.audit_log("r0") == [entries[0], entries[2], entries[4]]
    assert store.audit_log("r0", limit=2) == [entries[2], entries[4]]
    assert store.audit_log(limit=1) == [
        AuditEntry(at=T0 + 9, actor="bob", action="replay", detail={"n": [1, "é"]})
    ]
    assert len(store.audit_log()) == 6
    assert store.audit_log("nope") == []


def test_audit_entries_outlive_their_run(store: Store) -> None:
    store.enqueue(make_run("r1", status=RunStatus.SUCCEEDED, created_at=T0 - 90 * 86400))
    store.add_audit(AuditEntry(at=T0, actor="ada", action="resolve", run_id="r1"))
    assert store.prune(now=T0, keep_succeeded_s=86400, keep_failed_s=86400) == 1
    assert [e.run_id for e in store.audit_log()] == ["r1"]


def test_an_audit_entry_is_rolled_back_with_its_transaction(store: Store) -> None:
    store.enqueue(make_run("r1"))
    with pytest.raises(RuntimeError), store.transaction():
        store.update_run("r1", replayed_as="r2")
        store.add_audit(AuditEntry(at=T0, actor="ada", action="replay", run_id="r1"))
        raise RuntimeError("boom")
    assert store.audit_log() == []
    assert store.get_run("r1").replayed_as is None


# -- state -----------------------------------------------------------------------------------


def test_state_get_set_all(store: Store) -> None:
    assert store.get_state("table:a", "k1") is None
    assert store.all_state("table:a") == {}
    store.set_state("table:a", [("k1", "h1"), ("k2", "h2")])
    store.set_state("table:a", [("k2", "h2b")])
    store.set_state("schedule:b", [("last_fire", "1750000000")])
    assert store.get_state("table:a", "k1") == "h1"
    assert store.get_state("table:a", "k2") == "h2b"
    assert store.all_state("table:a") == {"k1": "h1", "k2": "h2b"}
    assert store.all_state("schedule:b") == {"last_fire": "1750000000"}
    assert store.get_state("schedule:b", "k1") is None


def test_state_set_from_a_generator(store: Store) -> None:
    store.set_state("s", ((f"k{i}", str(i)) for i in range(3)))
    assert store.all_state("s") == {"k0": "0", "k1": "1", "k2": "2"}


def test_get_states_answers_one_batch_of_keys(store: Store) -> None:
    store.set_state("table:a", ((f"k0:{i}", f"h{i}.0") for i in range(1200)))
    store.set_state("table:b", [("k0:5", "other")])
    wanted = ["k0:5", "k0:1199", "k0:absent", "k0:5", *(f"k0:{i}" for i in range(600, 1100))]
    found = store.get_states("table:a", wanted)
    assert len(found) == 502
    assert found["k0:5"] == "h5.0"
    assert found["k0:1199"] == "h1199.0"
    assert "k0:absent" not in found
    assert store.get_states("table:a", []) == {}
    assert store.get_states("table:none", ["k0:5"]) == {}


def test_get_states_default_asks_key_by_key() -> None:
    """The port's default (for a StateStore that does not override it) answers the same."""

    class Minimal(StateStore):
        def __init__(self) -> None:
            self.values: dict[tuple[str, str], str] = {}

        def get_state(self, scope: str, key: str) -> str | None:
            return self.values.get((scope, key))

        def set_state(self, scope: str, items: Iterable[tuple[str, str]]) -> None:
            self.values.update(((scope, k), v) for k, v in items)

        def all_state(self, scope: str) -> dict[str, str]:
            return {k: v for (s, k), v in self.values.items() if s == scope}

    state = Minimal()
    state.set_state("t", [("a", "1"), ("b", "2")])
    assert state.get_states("t", ["b", "c", "b"]) == {"b": "2"}
