"""The recipes and connections pages over HTTP."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from automations.diagnostics import Diagnostic, Severity
from automations.records import RunStatus, StepStatus
from automations.stores import SQLiteStore
from tests.console.conftest import Client, FakeHost, run, sms_step


def test_a_recipe_line_has_trigger_file_version_and_last_runs(
    client: TestClient, host: FakeHost
) -> None:
    page = client.get("/recipes")
    assert page.status_code == 200
    row = re.search(r'<tr data-recipe="texts">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[1] == "webhook /hooks/texts"
    assert cells[2] == "texts.yaml"
    assert cells[3] == f"<code>{host.loaded['texts'].content_hash[:12]}</code>"
    assert re.findall(r'class="badge (\w+)">\w+ (\d+)</a>', cells[4]) == [
        ("failed", "2"), ("skipped", "1"), ("succeeded", "1"), ("unknown", "1")
    ]  # fmt: skip


def test_held_runs_offer_approve_and_discard(client: TestClient) -> None:
    page = client.get("/recipes").text
    row = re.search(r'<tr data-recipe="flood">(.*?)</tr>', page, re.S)
    assert row is not None
    assert "<strong>2 held</strong>" in row.group(1)
    assert 'action="/recipes/flood/approve"' in row.group(1)
    assert 'action="/recipes/flood/discard"' in row.group(1)
    assert "not loaded" in row.group(1)
    texts = re.search(r'<tr data-recipe="texts">(.*?)</tr>', page, re.S)
    assert texts is not None and "approve" not in texts.group(1)


def test_lint_diagnostics_of_the_latest_edit_are_shown(client: TestClient, host: FakeHost) -> None:
    host.lint = {
        "texts.yaml": [
            Diagnostic("texts.yaml", 3, 5, Severity.WARNING, "SEC002", "not <verified>")
        ],
        "broken.yaml": [Diagnostic("broken.yaml", 1, 1, Severity.ERROR, "SCH002", "no actions")],
    }
    page = client.get("/recipes").text
    assert (
        '<li class="warning"><code>texts.yaml:3:5</code> warning: not &lt;verified&gt; '
        "<code>[SEC002]</code></li>"
    ) in page
    assert "<code>broken.yaml</code>" in page
    assert "error: no actions <code>[SCH002]</code>" in page


def test_connections_show_pace_pause_and_backlog_progress(
    client: TestClient, store: SQLiteStore, host: FakeHost
) -> None:
    host.view = {
        "connections": {
            "quo": {"state": "open", "reason": "HTTP 401: the API key was refused",
                    "probe_in_s": 12.5},
            "loops": {"state": "closed", "reason": None, "probe_in_s": None},
        },
        "lanes": {"quo": {"running": 0, "queued": 3, "recipes": ["texts"]}},
    }  # fmt: skip
    for i in range(3):
        store.enqueue(run(f"w{i}", 90 + i, RunStatus.PENDING))
    page = client.get("/connections").text
    quo = re.search(r'<tr data-connection="quo" class="paused">(.*?)</tr>', page, re.S)
    assert quo is not None
    assert "paused</span> HTTP 401: the API key was refused (next try in 12.5 s)" in quo.group(1)
    # the pending run of "welcome" is not loaded: its actions are unknown; texts has 3+0 queued
    assert "<td>3</td>" in quo.group(1)
    assert '<progress value="0" max="3">' in quo.group(1)
    loops = re.search(r'<tr data-connection="loops" class="sending">', page)
    assert loops is not None
    # a second look after one run went out: the bar moves
    store.update_run("w0", status=RunStatus.SUCCEEDED)
    store.put_step(sms_step("w0", StepStatus.SUCCEEDED))
    again = client.get("/connections").text
    assert '<progress value="1" max="3">' in again
    assert "<h2>Waiting runs by recipe</h2>" in again


def test_429s_are_counted_over_the_last_minute(console: Client, host: FakeHost) -> None:
    now = [1000.0]
    client = console(clock=lambda: now[0])
    host.rate_limited = {"quo": 5.0}
    client.get("/connections")  # the first sample: the base
    now[0] += 30
    host.rate_limited = {"quo": 12.0}
    assert _cell(client.get("/connections").text, "quo", 3) == "7"
    now[0] += 61  # the 30 s sample is now a minute old: it is the base
    host.rate_limited = {"quo": 13.0}
    assert _cell(client.get("/connections").text, "quo", 3) == "1"


def _cell(page: str, connection: str, index: int) -> str:
    row = re.search(rf'<tr data-connection="{connection}" class="\w+">(.*?)</tr>', page, re.S)
    assert row is not None, page
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)[index]
