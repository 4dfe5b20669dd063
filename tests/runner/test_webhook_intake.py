"""The webhook intake: every answer the issue names, and nothing half-processed."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from automations.errors import StoreError
from automations.recipes.compiler import load_recipe_text
from automations.records import RunRecord
from automations.stores import MemoryStore
from automations.triggers.webhook import WebhookIntake
from tests.fakes.webhooks import openphone_headers, standard_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
QUO_SECRET = "c2VjcmV0LWtleS1mb3ItcXVv"

RECIPES = {
    "/hooks/loops": "standard-webhooks",
    "/hooks/quo": "openphone",
    "/hooks/token": "token",
}


def _recipe(path: str, scheme: str) -> str:
    secret = {"standard-webhooks": "LOOPS_SECRET", "openphone": "QUO_SECRET", "token": "TOK"}
    header = ", header: X-Token" if scheme == "token" else ""
    return (
        f"name: r{abs(hash(path)) % 1000}\ntrigger:\n  webhook: {{path: {path}, verify: "
        f'{{scheme: {scheme}, secret: "${{{secret[scheme]}}}"{header}}}}}\n'
        'actions:\n  - http.request: {method: POST, url: "https://x.example/a"}\n'
    )


class AsgiClient:
    """Synchronous calls into an ASGI app through httpx's ASGI transport (no network)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.request(method, path, **kw)

        return asyncio.run(go())

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)


def _client(
    max_body: int, faults: list[Exception] | None = None
) -> tuple[AsgiClient, MemoryStore, list[RunRecord]]:
    """An intake over a memory store; each of ``faults`` is raised by one recording, in turn."""
    env = {"LOOPS_SECRET": SECRET, "QUO_SECRET": QUO_SECRET, "TOK": "s3cret-token"}
    recipes = {}
    for path, scheme in RECIPES.items():
        res = load_recipe_text(_recipe(path, scheme), "r.yaml", base_dir=Path("."), env=env)
        assert res.recipe is not None, res.diagnostics
        recipes[path] = res.recipe
    store = MemoryStore()
    dispatched: list[RunRecord] = []

    def accept(run: RunRecord, key: str | None) -> tuple[RunRecord, bool]:
        if faults:
            raise faults.pop(0)
        stored, new = store.enqueue(run)
        if new:
            dispatched.append(stored)
        return stored, new

    intake = WebhookIntake(recipes.get, env, accept, max_body=max_body)
    app = Starlette(routes=[Route("/{p:path}", intake.handle, methods=["GET", "POST", "PUT"])])
    return AsgiClient(app), store, dispatched


@pytest.fixture
def client() -> tuple[AsgiClient, MemoryStore, list[RunRecord]]:
    return _client(1000)


def _standard(body: bytes, msg_id: str = "msg_1", ts: int | None = None) -> dict[str, str]:
    return standard_headers(body, msg_id, secret=SECRET, ts=ts)


def test_valid_then_replayed_delivery(
    client: tuple[AsgiClient, MemoryStore, list[RunRecord]],
) -> None:
    c, store, dispatched = client
    body = json.dumps({"eventName": "contact.created"}).encode()
    first = c.post("/hooks/loops", content=body, headers=_standard(body))
    assert first.status_code == 202
    run_id = first.json()["run_id"]
    again = c.post("/hooks/loops", content=body, headers=_standard(body))
    assert again.status_code == 200
    assert again.json() == {"run_id": run_id, "status": "duplicate"}
    assert [r.id for r in dispatched] == [run_id]
    assert store.get_run(run_id).event_key == "msg_1"


def test_forged_stale_and_missing_signatures_record_nothing(
    client: tuple[AsgiClient, MemoryStore, list[RunRecord]],
) -> None:
    c, store, dispatched = client
    body = b'{"a": 1}'
    forged = _standard(body)
    forged["webhook-signature"] = "v1,AAAA" + forged["webhook-signature"][7:]
    assert c.post("/hooks/loops", content=body, headers=forged).status_code == 401
    stale = _standard(body, ts=int(time.time()) - 600)
    assert c.post("/hooks/loops", content=body, headers=stale).status_code == 401
    assert c.post("/hooks/loops", content=body).status_code == 401
    tampered = _standard(body)
    assert c.post("/hooks/loops", content=b'{"a": 2}', headers=tampered).status_code == 401
    assert dispatched == []
    assert store.count() == 0
    assert SECRET not in c.post("/hooks/loops", content=body, headers=forged).text


def test_openphone_signature_and_event_id(
    client: tuple[AsgiClient, MemoryStore, list[RunRecord]],
) -> None:
    c, store, _ = client
    body = json.dumps({"id": "EV123", "type": "message.received"}).encode()
    headers = openphone_headers(body, secret=QUO_SECRET)
    res = c.post("/hooks/quo", content=body, headers=headers)
    assert res.status_code == 202
    assert store.get_run(res.json()["run_id"]).event_key == "EV123"


def test_token_scheme(client: tuple[AsgiClient, MemoryStore, list[RunRecord]]) -> None:
    c, _, _ = client
    assert c.post("/hooks/token", content=b"{}", headers={"X-Token": "nope"}).status_code == 401
    assert (
        c.post("/hooks/token", content=b"{}", headers={"X-Token": "s3cret-token"}).status_code
        == 202
    )


def test_statuses(client: tuple[AsgiClient, MemoryStore, list[RunRecord]]) -> None:
    c, store, _ = client
    assert c.post("/nope", content=b"{}").status_code == 404
    res = c.get("/hooks/loops")
    assert res.status_code == 405
    assert res.headers["allow"] == "POST"
    big = b'{"x": "' + b"a" * 2000 + b'"}'
    assert c.post("/hooks/loops", content=big, headers=_standard(big)).status_code == 413
    bad = b"not json"
    assert c.post("/hooks/loops", content=bad, headers=_standard(bad)).status_code == 400
    assert store.count() == 0


def test_a_missing_secret_is_503_and_records_nothing() -> None:
    res = load_recipe_text(
        _recipe("/hooks/loops", "standard-webhooks"), "r.yaml", base_dir=Path("."), env={}
    )
    assert res.recipe is not None
    store = MemoryStore()

    def accept(run: RunRecord, key: str | None) -> tuple[RunRecord, bool]:
        return store.enqueue(run)

    intake = WebhookIntake({"/hooks/loops": res.recipe}.get, {}, accept)
    app = Starlette(routes=[Route("/{p:path}", intake.handle, methods=["POST"])])
    body = b'{"a": 1}'
    answer = AsgiClient(app).post("/hooks/loops", content=body, headers=_standard(body))
    assert answer.status_code == 503
    assert answer.json() == {"error": "webhook verification is not configured on this runner"}
    assert store.count() == 0


def test_rejections_are_logged_at_warning_with_the_reason_and_no_secret(
    client: tuple[AsgiClient, MemoryStore, list[RunRecord]], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    c, store, _ = client
    body = json.dumps({"eventName": "contact.created"}).encode()
    forged = _standard(body)
    forged["webhook-signature"] = "v1," + "A" * 43 + "="
    stale = _standard(body, ts=int(time.time()) - 3600)
    with caplog.at_level(logging.DEBUG, logger="automations"):
        assert c.post("/hooks/nope", content=body).status_code == 404
        assert c.post("/hooks/loops", content=body, headers=forged).status_code == 401
        assert c.post("/hooks/loops", content=body, headers=stale).status_code == 401
        assert (
            c.post("/hooks/token", content=b"{", headers={"X-Token": "s3cret-token"}).status_code
            == 400
        )
        assert c.post("/hooks/token", content=body, headers={"X-Token": "wrong"}).status_code == 401
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    reasons = [
        ("/hooks/nope", 404, "no recipe serves /hooks/nope"),
        ("/hooks/loops", 401, "webhook-signature does not match the body"),
        ("/hooks/loops", 401, "timestamp too old"),
        (
            "/hooks/token",
            400,
            "the body is not JSON (Expecting property name enclosed in double quotes at line 1 "
            "column 2)",
        ),
        ("/hooks/token", 401, "x-token header does not match the token"),
    ]
    assert got == [
        ("WARNING", f"webhook '{path}' rejected with {code}: {why} (from 127.0.0.1)")
        for path, code, why in reasons
    ]
    logged = caplog.text
    assert SECRET not in logged and "s3cret-token" not in logged and "wrong" not in logged
    assert store.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1e999}',
        b'{"a": "\\ud800"}',
        b"[" * 970 + b"]" * 970,
        b"1" * 4301,
    ],
    ids=["nan", "infinity", "1e999", "lone-surrogate", "970-levels", "4301-digits"],
)
def test_poison_json_is_400_and_records_nothing(body: bytes) -> None:
    c, store, dispatched = _client(1 << 20)
    res = c.post("/hooks/loops", content=body, headers=_standard(body))
    assert res.status_code == 400
    assert res.json()["error"].startswith(("the body", "NaN", "Infinity", "the number"))
    assert store.count() == 0 and dispatched == []


@pytest.mark.parametrize(
    "fault",
    [StoreError("disk I/O error"), sqlite3.OperationalError("database is locked")],
    ids=["store-error", "locked"],
)
def test_a_store_fault_is_503_with_retry_after_and_the_retry_is_recorded(
    fault: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    c, store, dispatched = _client(1000, faults=[fault])
    body = json.dumps({"eventName": "contact.created"}).encode()
    with caplog.at_level(logging.ERROR, logger="automations"):
        refused = c.post("/hooks/loops", content=body, headers=_standard(body))
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
    assert store.count() == 0
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "could not be recorded" in caplog.records[0].getMessage()
    retried = c.post("/hooks/loops", content=body, headers=_standard(body))
    assert retried.status_code == 202
    assert (store.count(), len(dispatched)) == (1, 1)


def test_a_flood_of_forged_deliveries_is_logged_at_a_bounded_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    c, store, _ = _client(1000)
    body = b'{"a": 1}'
    forged = _standard(body)
    forged["webhook-signature"] = "v1,AAAA" + forged["webhook-signature"][7:]
    with caplog.at_level(logging.WARNING, logger="automations"):
        answers = [c.post("/hooks/loops", content=body, headers=forged) for _ in range(60)]
    assert [a.status_code for a in answers] == [401] * 60
    assert store.count() == 0
    rejected = [r for r in caplog.records if "rejected with 401" in r.getMessage()]
    assert len(rejected) == 20  # ThrottledLog's default bound per 10 s
