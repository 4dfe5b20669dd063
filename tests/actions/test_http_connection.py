"""``http.request`` with ``connection:``, ``query:`` and percent-encoded URL values (issue 14)."""

from __future__ import annotations

from pathlib import Path

import httpx

from automations.connections import Connections
from automations.execution.render import render_action
from automations.outbound import Connection
from automations.recipes.compiler import load_recipe_text
from automations.retry import RetryPolicy
from tests.fakes.connections import with_connections

RECIPE = """
name: h
trigger:
  table: {path: leads.csv, key: Email}
actions:
  - id: find
    http.request:
      connection: quo
      method: GET
      url: /v1/contacts
      query: {externalIds: [/Email, /Other], maxResults: 1, pageToken: /Missing}
  - id: raw
    http.request:
      method: GET
      url: "https://crm.example.com/people/{/Email}?email={/Email}&n={/N}"
  - http.request:
      connection: loops
      method: PUT
      url: /v1/contacts/{/N}/x
      json: {email: /Email}
"""
ROW = {"Email": "a+b&c@x.com", "Other": "ü/2", "N": 3}


def _recipe(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "leads.csv").write_text("Email,Other,N,Missing\n")
    result = load_recipe_text(RECIPE, "h.yaml", base_dir=tmp_path, env={"QUO_API_KEY": "k"})
    assert result.diagnostics == ()
    assert result.recipe is not None
    return result.recipe


def test_values_in_urls_and_queries_are_percent_encoded(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    find = render_action(recipe, recipe.actions[0], 0, ROW, {}, {}, run_id="r")
    assert (find.connection, find.method, find.path) == (
        Connection.QUO,
        "GET",
        "/v1/contacts?externalIds=a%2Bb%26c%40x.com&externalIds=%C3%BC%2F2&maxResults=1",
    )
    assert find.resend_safe
    raw = render_action(recipe, recipe.actions[1], 1, ROW, {}, {}, run_id="r")
    assert raw.connection is Connection.HTTP
    assert raw.path == (
        "https://crm.example.com/people/a%2Bb%26c%40x.com?email=a%2Bb%26c%40x.com&n=3"
    )
    loops = render_action(recipe, recipe.actions[2], 2, ROW, {}, {}, run_id="r")
    assert (loops.connection, loops.method, loops.path) == (
        Connection.LOOPS,
        "PUT",
        "/v1/contacts/3/x",
    )


def test_a_connection_supplies_base_url_key_maton_route_and_pacing(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    req = render_action(recipe, recipe.actions[0], 0, ROW, {}, {}, run_id="r")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "totalItems": 0, "nextPageToken": None})

    async def twelve(conns: Connections) -> int:
        for _ in range(12):
            await conns.send(req, RetryPolicy(max_attempts=1))
        limiter = conns.limiter_for(Connection.QUO)
        assert limiter is not None
        return limiter.released

    def send(env: dict[str, str]) -> int:
        return with_connections(handler, twelve, env)

    assert send({"QUO_API_KEY": "quo-key"}) == 12
    direct = seen[0]
    assert str(direct.url) == (
        "https://api.openphone.com/v1/contacts?externalIds=a%2Bb%26c%40x.com"
        "&externalIds=%C3%BC%2F2&maxResults=1"
    )
    assert direct.headers["authorization"] == "quo-key"
    seen.clear()
    assert send({"MATON_API_KEY": "m", "MATON_CONNECTION": "c1"}) == 12
    via = seen[0]
    assert via.url.path == "/quo/v1/contacts"
    assert via.url.host == "gateway.maton.ai"
    assert (via.headers["authorization"], via.headers["maton-connection"]) == ("Bearer m", "c1")


def test_lint_wants_a_written_path_with_a_connection(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("Email\n")
    text = RECIPE.replace("url: /v1/contacts\n", "url: https://api.openphone.com/v1/contacts\n")
    result = load_recipe_text(text, "h.yaml", base_dir=tmp_path, env={"QUO_API_KEY": "k"})
    assert [(d.code, d.line) for d in result.diagnostics if d.code == "REF004"] == [("REF004", 10)]
    text = RECIPE.replace("url: /v1/contacts\n", 'url: "{/Email}/v1"\n')
    result = load_recipe_text(text, "h.yaml", base_dir=tmp_path, env={"QUO_API_KEY": "k"})
    assert [(d.code, d.line) for d in result.diagnostics if d.code == "REF004"] == [("REF004", 10)]
