"""The shared slot book (``RateGate``), one contract over memory and PostgreSQL: GCRA with no
burst, holds that push every later slot, keys apart. Time is a parameter: nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from automations.errors import StoreError
from automations.ports import RateGate
from automations.stores.postgres import PostgresStore
from automations.stores.rate_gate import MemoryRateGate, PostgresRateGate, rate_gate_for
from automations.stores.sqlite import SQLiteStore
from tests.postgres import emptied_store_url

T0 = 1_800_000_000.0
IV = 0.101


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
def gate(request: pytest.FixtureRequest) -> Iterator[RateGate]:
    if request.param == "memory":
        yield MemoryRateGate()
        return
    store = PostgresStore(emptied_store_url())
    try:
        yield PostgresRateGate(store)
    finally:
        store.close()


def waits(gate: RateGate, key: str, n: int, now: float) -> list[float]:
    return [round(gate.reserve(key, IV, 10, now=now)[0], 5) for _ in range(n)]


def test_each_reservation_takes_the_next_slot(gate: RateGate) -> None:
    assert waits(gate, "quo:a", 4, T0) == [0.0, 0.101, 0.202, 0.303]


def test_slots_go_on_from_where_the_book_is(gate: RateGate) -> None:
    assert waits(gate, "quo:a", 2, T0) == [0.0, 0.101]
    # 0.15 s later the next free slot (T0 + 0.202) is 0.052 s away
    assert waits(gate, "quo:a", 1, T0 + 0.15) == [0.052]


def test_an_idle_key_saves_nothing_up(gate: RateGate) -> None:
    waits(gate, "quo:a", 3, T0)
    assert waits(gate, "quo:a", 3, T0 + 60) == [0.0, 0.101, 0.202]


def test_keys_are_paced_apart(gate: RateGate) -> None:
    assert waits(gate, "quo:a", 2, T0) == [0.0, 0.101]
    assert waits(gate, "loops:b", 2, T0) == [0.0, 0.101]


def test_a_hold_pushes_every_later_slot(gate: RateGate) -> None:
    waits(gate, "quo:a", 2, T0)
    gate.hold("quo:a", 5.0, now=T0)
    assert waits(gate, "quo:a", 2, T0 + 1) == [4.0, 4.101]


def test_a_shorter_hold_never_shortens_a_longer_one(gate: RateGate) -> None:
    gate.hold("quo:a", 5.0, now=T0)
    gate.hold("quo:a", 1.0, now=T0)
    assert waits(gate, "quo:a", 1, T0) == [5.0]


def test_a_hold_of_a_key_never_used_starts_its_book(gate: RateGate) -> None:
    gate.hold("quo:new", 2.0, now=T0)
    assert waits(gate, "quo:new", 1, T0) == [2.0]
    assert waits(gate, "quo:other", 1, T0) == [0.0]


def test_a_hold_in_the_past_changes_nothing(gate: RateGate) -> None:
    waits(gate, "quo:a", 1, T0)
    gate.hold("quo:a", -3.0, now=T0)
    assert waits(gate, "quo:a", 1, T0) == [0.101]


def test_slots_are_numbered_per_key(gate: RateGate) -> None:
    assert [gate.reserve("quo:a", IV, 10, now=T0)[1] for _ in range(3)] == [1, 2, 3]
    assert gate.reserve("loops:b", IV, 10, now=T0)[1] == 1


def test_a_late_slot_moves_the_one_a_window_after_it(gate: RateGate) -> None:
    assert waits(gate, "quo:a", 3, T0) == [0.0, 0.101, 0.202]
    gate.report_late("quo:a", 2, 0.05)  # the second went 50 ms after its time
    # the 4th to 11th keep their places; the 12th (10 after the 2nd) is 1.01 s after when
    # the 2nd really went: 0.151 + 1.01
    assert waits(gate, "quo:a", 9, T0) == [round(0.303 + 0.101 * i, 5) for i in range(8)] + [1.161]


def test_a_report_outside_the_window_changes_nothing(gate: RateGate) -> None:
    waits(gate, "quo:a", 12, T0)
    gate.report_late("quo:a", 1, 5.0)  # 11 slots back: out of the window
    gate.report_late("quo:a", 99, 5.0)  # not taken yet
    gate.report_late("quo:none", 1, 5.0)  # no such key
    assert waits(gate, "quo:a", 1, T0) == [1.212]


@pytest.mark.integration
def test_postgres_reservations_use_the_server_clock_by_default() -> None:
    store = PostgresStore(emptied_store_url())
    try:
        gate = PostgresRateGate(store)
        first, _ = gate.reserve("quo:a", 0.5, 10)
        second, _ = gate.reserve("quo:a", 0.5, 10)
    finally:
        store.close()
    assert first == 0.0
    assert 0.3 < second <= 0.5  # the next slot, measured by the server's clock


@pytest.mark.integration
def test_an_unreachable_database_raises_store_error() -> None:
    store = PostgresStore(emptied_store_url())
    gate = PostgresRateGate(store)
    store.close()  # its pool is closed: no connection can be had
    with pytest.raises(StoreError):
        gate.reserve("quo:a", IV, 10)


def test_one_process_stores_pace_on_their_own(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    store = SQLiteStore(tmp_path / "runs.db")
    try:
        assert rate_gate_for(store) is None
    finally:
        store.close()


@pytest.mark.integration
def test_a_postgres_store_paces_through_its_table() -> None:
    store = PostgresStore(emptied_store_url())
    try:
        assert isinstance(rate_gate_for(store), PostgresRateGate)
    finally:
        store.close()
