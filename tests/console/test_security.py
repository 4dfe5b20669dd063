"""The console's security rules over HTTP: headers, escaping, masking, login, origin, host."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from automations.console import Gate, check_bind
from automations.console.auth import COOKIE, LOGIN_ATTEMPTS, SESSION_S, is_loopback
from automations.errors import StartupError
from automations.stores import SQLiteStore
from tests.console.conftest import BASE, EMAIL, ORIGIN, PHONE, TOKEN, XSS, Client

PAGES = ("/runs", "/runs?skipped=1", "/runs/xss", "/runs/ok", "/recipes", "/connections", "/bulk")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@pytest.mark.parametrize("path", [*PAGES, "/static/console.js", "/runs/nope", "/login"])
def test_every_answer_has_a_strict_csp_and_is_never_cached(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "same-origin"


def test_pages_have_no_inline_script_or_style(client: TestClient) -> None:
    for path in PAGES:
        body = client.get(path).text
        assert re.findall(r"<script[^>]*>", body) == ['<script src="/static/console.js" defer>']
        assert "<style" not in body and " style=" not in body and " on" + "click" not in body


@pytest.mark.parametrize(
    "path", ["/runs", "/runs?skipped=1", "/runs/xss", "/runs?key=%3Cscript%3E"]
)
def test_a_row_named_script_renders_as_text(client: TestClient, path: str) -> None:
    body = client.get(path).text
    assert "<script>" not in body
    assert "alert(" not in body or "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body


def test_the_xss_run_shows_its_values_escaped(client: TestClient) -> None:
    body = client.get("/runs/xss").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body  # the key, the event
    assert "bad row &lt;script&gt;" in body
    listing = client.get("/runs").text
    assert '<td class="key">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td>' in listing
    assert XSS not in listing


def test_phones_and_emails_are_masked_in_the_list_and_full_on_the_run_page(
    client: TestClient,
) -> None:
    listing = client.get("/runs").text
    assert PHONE not in listing and "5555550123" not in listing
    assert EMAIL not in listing
    assert '<td class="key">+1••••••0123</td>' in listing
    assert '<td class="key">A•••@example.com</td>' in listing
    assert PHONE in client.get("/runs/ok").text
    assert EMAIL in client.get("/runs/failed").text


def test_no_secret_reaches_a_page(
    client: TestClient, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the audit stores requests masked; the page shows what the audit has, never an API key
    monkeypatch.setenv("QUO_API_KEY", "quo-live-key-1234567890")
    for path in PAGES:
        assert "quo-live-key" not in client.get(path).text
    assert "${QUO_API_KEY}" in client.get("/runs/ok").text


# -- the host (DNS rebinding) -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["127.0.0.1:8788", "localhost:8788", "[::1]:8788", "127.0.0.1"])
def test_an_open_console_answers_its_loopback_names(client: TestClient, name: str) -> None:
    assert client.get("/runs", headers={"Host": name}).status_code == 200


@pytest.mark.parametrize("name", ["evil.example:8788", "192.168.1.5:8788", ""])
def test_an_open_console_refuses_other_host_names(client: TestClient, name: str) -> None:
    answer = client.get("/runs", headers={"Host": name})
    assert answer.status_code == 421
    assert "answers only to its loopback address" in answer.text
    assert PHONE not in answer.text


# -- POST needs the console's own Origin -------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:9999"},
        {"Referer": "http://evil.example/page"},
    ],
)
def test_a_post_from_elsewhere_is_refused_and_changes_nothing(
    client: TestClient, store: SQLiteStore, headers: dict[str, str]
) -> None:
    for path in ("/runs/failed/replay", "/recipes/flood/approve", "/bulk/replay"):
        answer = client.post(path, headers=headers)
        assert answer.status_code == 403, path
        assert "does not come from the console's own pages" in answer.text
    assert store.get_run("failed").replayed_as is None
    assert store.count_by_recipe(store.get_run("held1").status) == {"flood": 2}
    assert store.audit_log() == []


def test_a_referer_from_the_console_is_enough_without_an_origin(
    client: TestClient, store: SQLiteStore
) -> None:
    answer = client.post("/recipes/flood/discard", headers={"Referer": f"{BASE}/recipes"})
    assert answer.status_code == 303


def test_state_changing_routes_accept_no_get(client: TestClient, store: SQLiteStore) -> None:
    assert client.get("/recipes/flood/approve").status_code == 405
    assert client.get("/runs/unknown/steps/sms/resolve?outcome=sent").status_code == 405
    assert client.get("/bulk/replay").status_code == 405
    assert client.get("/runs/failed/replay").status_code == 200  # the confirmation page only
    assert store.get_run("failed").replayed_as is None


# -- the login ---------------------------------------------------------------------------


def login(client: TestClient, token: str = TOKEN, name: str = "") -> str | None:
    answer = client.post("/login", data={"token": token, "name": name}, headers=ORIGIN)
    return answer.cookies.get(COOKIE)


@pytest.mark.parametrize("path", [*PAGES, "/static/console.js", "/runs/ok/replay"])
def test_with_a_token_every_page_needs_a_session(console: Client, path: str) -> None:
    client = console(TOKEN)
    answer = client.get(path)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    assert PHONE not in answer.text


def test_with_a_token_the_event_stream_and_posts_need_a_session(
    console: Client, store: SQLiteStore
) -> None:
    client = console(TOKEN)
    assert client.get("/events").status_code == 401
    assert client.post("/runs/failed/replay", headers=ORIGIN).status_code == 401
    assert client.post("/recipes/flood/approve", headers=ORIGIN).status_code == 401
    assert store.audit_log() == []


def test_the_login_gives_an_httponly_strict_cookie(console: Client) -> None:
    client = console(TOKEN)
    assert "AUTOMATIONS_UI_TOKEN" in client.get("/login").text
    answer = client.post("/login", data={"token": TOKEN}, headers=ORIGIN)
    assert (answer.status_code, answer.headers["location"]) == (303, "/runs")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert f"Max-Age={SESSION_S}" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback; Secure behind https
    assert TOKEN not in cookie
    assert client.get("/runs").status_code == 200


def test_a_wrong_token_is_refused_and_failures_are_limited(console: Client) -> None:
    client = console(TOKEN)
    for _ in range(LOGIN_ATTEMPTS):
        answer = client.post("/login", data={"token": "guess"}, headers=ORIGIN)
        assert answer.status_code == 401
        assert "that is not the token" in answer.text
        assert COOKIE not in answer.cookies
    blocked = client.post("/login", data={"token": TOKEN}, headers=ORIGIN)
    assert blocked.status_code == 429
    assert "too many failed attempts" in blocked.text
    assert COOKIE not in blocked.cookies


def test_a_login_needs_the_console_origin_too(console: Client) -> None:
    client = console(TOKEN)
    answer = client.post("/login", data={"token": TOKEN}, headers={"Origin": "http://evil"})
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "cookie",
    ["", "v1.9999999999.YWRh.forged", "garbage", "v1.1.YWRh.x.y"],
)
def test_a_forged_or_garbled_cookie_is_no_session(console: Client, cookie: str) -> None:
    client = console(TOKEN)
    client.cookies.set(COOKIE, cookie)
    assert client.get("/runs").status_code == 303


def test_a_session_ends_after_twelve_hours_and_with_a_new_token() -> None:
    now = [1_000.0]
    gate = Gate(TOKEN, clock=lambda: now[0])
    value = gate.issue("ada")
    session = gate.session(value)
    assert session is not None and session.actor == "ada"
    now[0] += SESSION_S - 1
    assert gate.session(value) is not None
    now[0] += 1
    assert gate.session(value) is None
    assert Gate("another-token").session(Gate(TOKEN).issue(None)) is None


def test_logout_ends_the_session(console: Client) -> None:
    client = console(TOKEN)
    login(client)
    answer = client.post("/logout", headers=ORIGIN)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    assert (
        "Max-Age=0" in answer.headers["set-cookie"]
        or "expires=" in answer.headers["set-cookie"].lower()
    )


def test_with_a_token_any_host_name_may_reach_the_login(console: Client) -> None:
    client = console(TOKEN)
    assert client.get("/login", headers={"Host": "ops.example.com"}).status_code == 200


# -- the bind rule -----------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(address: str) -> None:
    assert is_loopback(address)
    check_bind(address, None)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.5", "ops.example.com"])
def test_any_other_address_needs_a_token(address: str) -> None:
    assert not is_loopback(address)
    with pytest.raises(StartupError, match="set AUTOMATIONS_UI_TOKEN to a long random value"):
        check_bind(address, None)
    with pytest.raises(StartupError):
        check_bind(address, "")
    check_bind(address, TOKEN)


def test_a_program_may_send_the_token_as_a_bearer(console: Client) -> None:
    client = console(TOKEN)
    assert client.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    for wrong in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ", TOKEN):
        assert client.get("/runs", headers={"Authorization": wrong}).status_code == 303
