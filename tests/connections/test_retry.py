from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from automations.retry import RetryPolicy, parse_retry_after

NOW = datetime(2025, 6, 2, 12, 0, 0, tzinfo=UTC)


def test_exponential_without_jitter_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=False)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_decorrelated_jitter_stays_between_base_and_three_times_the_previous() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    rng = random.Random(7)
    previous = None
    for attempt in range(1, 40):
        delay = policy.backoff(attempt, previous, rng=rng)
        upper = 3 * (previous if previous is not None else 0.5)
        assert 0.5 <= delay <= min(30.0, upper)
        previous = delay


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy()
    a = [policy.backoff(1, 2.0, rng=random.Random(3)) for _ in range(2)]
    assert a[0] == a[1]


def test_retry_after_wins_over_the_curve() -> None:
    assert RetryPolicy().backoff(1, None, retry_after=7.0) == 7.0
    assert RetryPolicy(jitter=False).backoff(3, retry_after=0.0) == 0.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Mon, 02 Jun 2025 12:00:30 GMT", 30.0),
        ("Mon, 02 Jun 2025 11:59:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1}, {"base_delay": 5, "max_delay": 1}],
)
def test_rejects_nonsense_policies(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
