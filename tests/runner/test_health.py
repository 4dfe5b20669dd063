"""``GET /healthz``: a bare summary for anyone; the detail (relative paths, diagnostics) only with
the console token."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from automations.connections import Connections, ConnectionSettings
from automations.runner.app import build_app
from automations.runner.health import Health, HealthSection, relative_to
from automations.runner.service import Runner
from automations.stores import SQLiteStore

TOKEN = "console-token-0123456789"

HOOK = """name: hook
trigger:
  webhook: {path: /hooks/secret-path-123, verify: {scheme: none}}
actions:
  - http.request: {method: POST, url: "https://x.example/a"}
"""
BROKEN = "name: broken\ntrigger: {webhook: {path: /b}}\nactions: [{nope: 1}]\n"


def _healthz(directory: Path, db: Path, env: dict[str, str], **headers: str) -> list[Any]:
    async def go() -> list[Any]:
        store = SQLiteStore(db)
        async with Connections(ConnectionSettings.from_env(env)) as conns:
            runner = Runner(directory, store, conns, env)
            await runner.start()
            try:
                transport = httpx.ASGITransport(app=build_app(runner))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    answers = [
                        await c.get("/healthz"),
                        await c.get("/healthz", headers=headers),
                    ]
            finally:
                await runner.stop()
                store.close()
        return [(a.status_code, a.json(), a.text) for a in answers]

    return asyncio.run(go())


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    directory = tmp_path / "deep" / "place" / "recipes"
    (directory / "sub").mkdir(parents=True)
    (directory / "sub" / "hook.yaml").write_text(HOOK)
    (directory / "broken.yaml").write_text(BROKEN)
    return directory


def test_without_a_token_only_the_summary(recipes: Path, tmp_path: Path) -> None:
    env = {"AUTOMATIONS_CONSOLE_TOKEN": TOKEN}
    [(status, body, text), (status2, body2, _)] = _healthz(
        recipes, tmp_path / "a.db", env, authorization="Bearer wrong-token"
    )
    assert status == 200 and body == {"status": "ok", "recipes": 1, "errors": 1}
    assert status2 == 200 and body2 == body  # a wrong token sees the same
    for private in (str(tmp_path), "secret-path-123", "hook.yaml", "broken", "SCH"):
        assert private not in text


def test_with_the_token_the_detail_with_relative_paths(recipes: Path, tmp_path: Path) -> None:
    env = {"AUTOMATIONS_CONSOLE_TOKEN": TOKEN}
    [_, (status, body, text)] = _healthz(
        recipes, tmp_path / "a.db", env, authorization=f"Bearer {TOKEN}"
    )
    assert status == 200
    assert str(tmp_path) not in text
    assert body["status"] == "ok" and body["recipes"] == 1 and body["errors"] == 1
    detail = body["detail"]
    assert detail["recipes"] == [
        {
            "name": "hook",
            "file": "sub/hook.yaml",
            "trigger": "webhook",
            "version": detail["recipes"][0]["version"],
            "path": "/hooks/secret-path-123",
        }
    ]
    [(file, diags)] = detail["errors"].items()
    assert file == "broken.yaml"
    assert {d["file"] for d in diags} == {"broken.yaml"}
    assert detail["in_flight"] == 0 and detail["reloads"] == 0 and detail["dry_run"] is False


def test_no_token_configured_means_no_detail_for_anyone(recipes: Path, tmp_path: Path) -> None:
    [_, (_, body, _)] = _healthz(recipes, tmp_path / "a.db", {}, authorization="Bearer ")
    assert "detail" not in body


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer {TOKEN}x", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("Bearer", False),
        (None, False),
    ],
)
def test_token_check(header: str | None, ok: bool) -> None:
    assert Health(TOKEN).authorized(header) is ok
    assert Health(None).authorized(header) is False
    assert Health("").authorized("Bearer ") is False


def test_sections_add_detail_and_public_error_counts() -> None:
    health = Health(TOKEN)
    health.bind(started=lambda: True, recipes=lambda: 3)
    health.add(HealthSection("tables", lambda: {"leads": "missing"}, errors=lambda: 2))
    health.add(HealthSection("held", lambda: 4))
    assert health.answer(detail=False) == {"status": "ok", "recipes": 3, "errors": 2}
    assert health.answer(detail=True)["detail"] == {"tables": {"leads": "missing"}, "held": 4}


def test_relative_to(tmp_path: Path) -> None:
    (tmp_path / "r" / "a").mkdir(parents=True)
    assert relative_to(tmp_path / "r", tmp_path / "r" / "a" / "x.yaml") == "a/x.yaml"
    assert relative_to(tmp_path / "r", tmp_path / "elsewhere" / "y.yaml") == "y.yaml"
