"""One run over HTTP: the timeline, the chain, the buttons it offers."""

from __future__ import annotations

import html as htmllib
import re

from starlette.testclient import TestClient

from automations.execution.replay import record_replay
from automations.stores import SQLiteStore
from tests.console.conftest import EMAIL, PHONE


def test_the_timeline_shows_event_condition_and_each_step(client: TestClient) -> None:
    page = client.get("/runs/ok")
    assert page.status_code == 200
    text = htmllib.unescape(page.text)
    # the event in full (the run page is where contact details are shown)
    assert f'"phone": "{PHONE}"' in text
    assert f'"email": "{EMAIL}"' in text
    # the condition of the version that ran, and its result
    assert "<code>phone != null</code> →\n  <strong>true</strong>: the steps ran" in text
    # the step: rendered request (the key masked as the audit stores it), response, attempts
    assert "1. sms <small>quo.send_sms</small>" in text
    assert "POST https://api.openphone.com/v1/messages\nAuthorization: ${QUO_API_KEY}" in text
    assert '"content": "Hello Ada"' in text
    assert "<dt>Response status</dt><dd>HTTP 202</dd>" in text
    assert '"id": "msg_1"' in text
    assert "<dt>Attempts</dt><dd>1</dd>" in text
    assert "<dt>Took</dt><dd>84ms</dd>" in text
    assert "<dt>Finished</dt><dd>2026-05-28 20:26:40 · took 400ms</dd>" in text


def test_a_failed_run_offers_replay_and_an_unknown_step_offers_resolve(
    client: TestClient,
) -> None:
    failed = client.get("/runs/failed").text
    assert '<a href="/runs/failed/replay" class="button" id="replay">Replay…</a>' in failed
    assert "resolve-sent" not in failed
    unknown = client.get("/runs/unknown").text
    assert 'id="replay"' not in unknown
    assert "Replay: run unknown: step 1 (sms, quo.send_sms) may or may not have been sent" in (
        htmllib.unescape(unknown)
    )
    assert 'action="/runs/unknown/steps/sms/resolve"' in unknown
    assert 'id="resolve-sent-1">It was sent</button>' in unknown
    assert 'id="resolve-not-sent-1">It was not sent</button>' in unknown


def test_the_replay_chain_is_linked_both_ways(client: TestClient, store: SQLiteStore) -> None:
    replay = record_replay(store, store.get_run("failed"), actor="ada")
    original = client.get("/runs/failed").text
    assert f'<a href="/runs/{replay.id}" class="chain-forward">{replay.id[:12]}</a>' in original
    assert 'id="replay"' not in original  # replayed once: replay the newest of the chain
    assert f'ada · replay · <code>{{"replay": "{replay.id}"}}</code>' in original
    newer = client.get(f"/runs/{replay.id}").text
    assert '<a href="/runs/failed" class="chain-back">failed</a>' in newer


def test_an_unknown_run_id_is_a_404_page(client: TestClient) -> None:
    page = client.get("/runs/nope")
    assert page.status_code == 404
    assert "No such run" in page.text


def test_a_run_id_prefix_opens_the_run(client: TestClient) -> None:
    assert client.get("/runs/fail").status_code == 200


def test_every_link_script_and_form_stays_on_the_console(client: TestClient) -> None:
    for path in ("/runs", "/runs/ok", "/runs/unknown", "/recipes", "/connections", "/bulk"):
        body = client.get(path).text
        targets = re.findall(r'(?:src|href|action)="([^"]*)"', body)
        assert targets, path
        assert all(t.startswith("/") and not t.startswith("//") for t in targets), path
        assert re.findall(r"<script[^>]*>", body) == ['<script src="/static/console.js" defer>']
