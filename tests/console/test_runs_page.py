"""The runs list over HTTP: order, filters, search, skipped runs, keyset pages."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from automations.records import RunStatus
from automations.stores import SQLiteStore
from tests.console.conftest import EMAIL, PHONE, Client, run


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run-id="([^"]+)"', html)


def test_runs_are_listed_newest_first_with_skipped_hidden(client: TestClient) -> None:
    page = client.get("/runs")
    assert page.status_code == 200
    assert row_ids(page.text) == ["held2", "held1", "pending", "xss", "unknown", "failed", "ok"]
    assert 'id="show-skipped"' in page.text


def test_one_click_shows_the_skipped_runs(client: TestClient) -> None:
    page = client.get("/runs?skipped=1")
    assert row_ids(page.text) == [
        "held2", "held1", "pending", "xss", "skipped", "unknown", "failed", "ok"
    ]  # fmt: skip
    assert 'id="hide-skipped"' in page.text


def test_the_home_page_is_the_runs_list(client: TestClient) -> None:
    answer = client.get("/")
    assert (answer.status_code, answer.headers["location"]) == (303, "/runs")


def test_a_line_has_time_recipe_trigger_key_status_duration_error_and_replay(
    client: TestClient,
) -> None:
    html = client.get("/runs").text
    line = re.search(r'<tr data-run-id="failed".*?</tr>', html, re.S)
    assert line is not None
    text = line.group(0)
    assert '<time datetime="2026-05-28T20:26:41+00:00">2026-05-28 20:26:41</time>' in text
    assert '<td class="recipe">texts</td>' in text
    assert '<td class="trigger">webhook</td>' in text
    assert '<td class="key">A•••@example.com</td>' in text
    assert '<span class="badge failed">failed</span>' in text
    assert '<td class="duration">400ms</td>' in text
    # the error's first line only, its phone number masked
    assert '<td class="error">step sms failed: HTTP 400 invalid number +1••••••0123</td>' in text
    assert '<a href="/runs/failed/replay" class="replay">replay</a>' in text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("recipe=flood", ["held2", "held1"]),
        ("status=failed", ["xss", "failed"]),
        ("status=skipped", ["skipped"]),
        ("recipe=texts&status=unknown", ["unknown"]),
        ("since=2026-05-28T20:26:44", ["held2", "held1", "pending", "xss"]),
        ("since=2026-05-28T20:26:44&until=2026-05-28T20:26:46", ["pending", "xss"]),
        ("until=2026-05-28", []),
        ("recipe=nope", []),
    ],
)
def test_filters(client: TestClient, query: str, expected: list[str]) -> None:
    page = client.get(f"/runs?{query}")
    assert page.status_code == 200
    assert row_ids(page.text) == expected


@pytest.mark.parametrize(
    "term",
    [PHONE, "5555550123", "(555) 555-0123", "555-555-0123", "555.555.0123", "+1 555 555 0123"],
)
def test_a_phone_number_is_found_in_any_format(client: TestClient, term: str) -> None:
    page = client.get("/runs", params={"key": term})
    assert row_ids(page.text) == ["ok"]


@pytest.mark.parametrize("term", [EMAIL, EMAIL.lower(), f"  {EMAIL} "])
def test_an_email_is_found_as_typed_or_in_lower_case(
    client: TestClient, store: SQLiteStore, term: str
) -> None:
    store.enqueue(run("lower", 20, RunStatus.SUCCEEDED, key=EMAIL.lower()))
    page = client.get("/runs", params={"key": term})
    expected = ["lower", "failed"] if term.strip() == EMAIL else ["lower"]
    assert row_ids(page.text) == expected


def test_bad_filters_say_what_is_wrong_and_list_the_rest(client: TestClient) -> None:
    page = client.get("/runs?status=exploded&since=yesterday&recipe=flood")
    assert page.status_code == 200
    assert "status &#39;exploded&#39; is not one of: pending, running" in page.text
    assert "since: &#39;yesterday&#39; is not a time: use a date (2026-11-01)" in page.text
    assert row_ids(page.text) == ["held2", "held1"]


def test_keyset_pages_cover_every_run_once(console: Client, store: SQLiteStore) -> None:
    for i in range(120):
        store.enqueue(run(f"bulk{i:03d}", 100 + i, RunStatus.SUCCEEDED, recipe="bulk"))
    client = console()
    seen: list[str] = []
    url = "/runs?recipe=bulk"
    pages = 0
    while url:
        html = client.get(url).text
        pages += 1
        seen += row_ids(html)
        older = re.search(r'<a href="(/runs\?[^"]+)" id="older"', html)
        url = older.group(1).replace("&amp;", "&") if older else ""
    assert pages == 3
    assert seen == [f"bulk{i:03d}" for i in reversed(range(120))]


def test_an_older_page_is_not_live_and_links_back_to_the_newest(
    console: Client, store: SQLiteStore
) -> None:
    for i in range(60):
        store.enqueue(run(f"b{i:02d}", 100 + i, RunStatus.SUCCEEDED))
    client = console()
    first = client.get("/runs").text
    assert 'data-events="/events?after=b59"' in first
    second = client.get("/runs?before=b10").text
    assert row_ids(second)[:2] == ["b09", "b08"]
    assert "data-events" not in second
    assert '<a href="/runs" id="newest">newest</a>' in second
