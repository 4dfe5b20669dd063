"""Secrets in every encoding stay out of the audit (the SQLite file and its WAL, byte for byte),
the log, ``show`` and ``render``: a secret in a URL query parameter, percent-encoded as it is sent,
and a short secret (under 6 characters) substituted into a request."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.acceptance.conftest import Fakes, StartRunner, dumps, standard_headers, write_recipe

pytestmark = pytest.mark.acceptance

LEAK = 'US/LEAK+k3y v@l"é~'
PIN = "4321"

RECIPE = """
name: leaky
trigger:
  webhook:
    path: /hooks/leaky
    verify: {scheme: standard-webhooks, secret: "${HOOK_SECRET}"}
actions:
  - id: call
    http.request:
      method: POST
      url: "${TARGET_URL}/v1/anything?ref=${LEAK_KEY}&pin=${PIN_CODE}&page=2"
      json: {pin: "${PIN_CODE}", code: /code, note: "call 4321"}
"""


def _encodings(value: str) -> set[bytes]:
    forms = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        httpx.URL("https://h.test/p?k=" + value).query.decode()[2:],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}
    return {f.encode() for f in forms}


def _leaks(data: bytes, secret: str) -> list[bytes]:
    return [form for form in _encodings(secret) if form in data]


def test_secrets_in_every_encoding_stay_out(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes, tmp_path: Path
) -> None:
    recipe = write_recipe(recipes_dir, "leaky.yaml", RECIPE)
    env = {"LEAK_KEY": LEAK, "PIN_CODE": PIN, "TARGET_URL": fakes.quo_url}
    runner = start_runner(recipes_dir, env=env)
    body = dumps({"code": "A-1"})
    assert runner.post("/hooks/leaky", body, standard_headers(body)).status_code == 202
    runner.wait_runs("leaky", 1)

    # the provider got the real values
    [received] = [r for r in fakes.quo.received if r.path == "/v1/anything"]
    assert received.body == {"pin": PIN, "code": "A-1", "note": "call 4321"}

    # the audit, as written (the database and its WAL, while the runner runs)
    db = runner.db.read_bytes() + Path(f"{runner.db}-wal").read_bytes()
    assert _leaks(db, LEAK) == []
    [run] = runner.runs()
    shown = runner.show(run["id"])
    step = shown["steps"][0]
    assert (
        step["request"]["url"] == "${TARGET_URL}/v1/anything?ref=${LEAK_KEY}&pin=${PIN_CODE}&page=2"
    )
    # the short secret is masked where the recipe substitutes it, not in the literal text
    assert step["request"]["body"] == {"pin": "${PIN_CODE}", "code": "A-1", "note": "call 4321"}
    shown_text = json.dumps(shown, ensure_ascii=False).encode()
    assert _leaks(shown_text, LEAK) == []
    assert b'"pin": "4321"' not in shown_text and b"pin=4321" not in shown_text

    # render
    rendered = subprocess.run(
        [sys.executable, "-m", "automations", "render", str(recipe), "--row", '{"code": "A-1"}'],
        env=runner.env,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    out = json.loads(rendered)
    assert out["steps"][0]["request"]["url"].endswith("?ref=${LEAK_KEY}&pin=${PIN_CODE}&page=2")
    assert out["steps"][0]["request"]["body"]["pin"] == "${PIN_CODE}"
    assert _leaks(rendered, LEAK) == []

    # the log (the run failed: the fake refused it; its error names the URL)
    assert run["status"] == "failed"
    assert runner.stop() == 0
    log = runner.log.encode()
    assert "/v1/anything?ref=${LEAK_KEY}" in runner.log
    assert _leaks(log, LEAK) == []
    # after the checkpoint at stop, the database file alone
    assert _leaks(runner.db.read_bytes(), LEAK) == []
