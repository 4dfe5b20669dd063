"""The runs list's filters and the masking of contact details, as functions."""

from __future__ import annotations

import pytest

from automations.console.filters import RunsQuery, key_variants, parse_time
from automations.console.masking import mask_text
from automations.records import RunStatus


def test_a_phone_search_looks_up_its_usual_forms() -> None:
    assert key_variants("(555) 555-0123") == [
        "(555) 555-0123",
        "+15555550123",
        "5555550123",
        "15555550123",
        "555-555-0123",
        "555.555.0123",
        "555 555 0123",
        "+1 555-555-0123",
        "+1 (555) 555-0123",
        "+1 555 555 0123",
    ]


def test_an_email_search_looks_up_as_typed_and_in_lower_case() -> None:
    assert key_variants(" Ada@Example.com ") == ["Ada@Example.com", "ada@example.com"]


@pytest.mark.parametrize("term", ["evt_123", "2024-03-10T07:00:00Z", "12345", "abc-555-0123"])
def test_other_keys_are_looked_up_as_typed(term: str) -> None:
    assert key_variants(term) == [term]


def test_an_international_number_is_looked_up_in_e164_and_digits() -> None:
    assert key_variants("+44 7911 123456") == ["+44 7911 123456", "+447911123456", "447911123456"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-11-01", 1_793_491_200.0),
        ("2026-11-01T07:30", 1_793_518_200.0),
        ("2026-11-01T07:30+01:00", 1_793_514_600.0),
        ("90m", 10_000.0 - 5400),
        ("24h", 10_000.0 - 86_400),
        ("7d", 10_000.0 - 604_800),
    ],
)
def test_times_are_dates_iso_times_in_utc_or_durations_back(text: str, seconds: float) -> None:
    assert parse_time(text, now=10_000.0) == seconds


def test_a_query_round_trips_through_its_parameters() -> None:
    query, problems = RunsQuery.from_params(
        {"recipe": "texts", "status": "failed", "since": "24h", "key": "a@b.c", "skipped": "1"}
    )
    assert problems == []
    assert query == RunsQuery("texts", RunStatus.FAILED, "24h", None, "a@b.c", True, None)
    assert query.params() == "recipe=texts&status=failed&since=24h&key=a%40b.c&skipped=1"
    assert query.url("/runs", before="r1", key=None) == (
        "/runs?recipe=texts&status=failed&since=24h&skipped=1&before=r1"
    )
    assert RunsQuery().url("/runs") == "/runs"


def test_skipped_runs_are_hidden_unless_asked_for_or_filtered_by_status() -> None:
    assert RunsQuery().hides_skipped
    assert not RunsQuery(skipped=True).hides_skipped
    assert not RunsQuery(status=RunStatus.SKIPPED).hides_skipped


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("+15555550123", "+1••••••0123"),
        ("(555) 555-0123", "••••••0123"),
        ("ada.lovelace@example.com", "a•••@example.com"),
        ("to +44 7911 123456: refused", "to +••••••••3456: refused"),
        ("evt_00000000000000000001", "evt_00000000000000000001"),
        ("2024-03-10T07:00:00Z:ada@x.io", "2024-03-10T07:00:00Z:a•••@x.io"),
        ("run 3f2a9c1d0b7e", "run 3f2a9c1d0b7e"),
    ],
)
def test_lists_mask_phone_numbers_and_emails(text: str, shown: str) -> None:
    assert mask_text(text) == shown
