"""``GET /metrics`` on the console's listener of the real ``automations run``: exact values after
known webhooks and runs (the Loops fake on loopback), refusals counted by reason, no secret in the
exposition, and the token rule a Prometheus scrape meets."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.conftest import (
    HOOK_SECRET,
    LOOPS_HOOK,
    LOOPS_KEY,
    Fakes,
    StartRunner,
    dumps,
    standard_headers,
    write_recipe,
)
from tests.acceptance.runner_process import free_port, wait_until

pytestmark = pytest.mark.acceptance

UI_TOKEN = "ui-token-for-the-metrics-test-5d1c"


def scrape(ui: str, token: str | None = UI_TOKEN) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{ui}/metrics", headers=headers, timeout=10, follow_redirects=False)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_scrape_after_known_traffic(
    start_runner: StartRunner, recipes_dir: Path, fakes: Fakes
) -> None:
    write_recipe(recipes_dir, "hook.yaml", LOOPS_HOOK)
    port = free_port()
    runner = start_runner(
        recipes_dir, "--ui-port", str(port), env={"AUTOMATIONS_UI_TOKEN": UI_TOKEN}
    )
    ui = f"http://127.0.0.1:{port}"
    for i in range(3):
        body = dumps({"email": f"lead{i}@example.com"})
        answer = runner.post("/hooks/loops", body, standard_headers(body, f"msg_{i}"))
        assert answer.status_code == 202
    forged = dumps({"email": "intruder@example.com"})
    headers = standard_headers(forged, "msg_x", secret="whsec_" + "d3Jvbmctc2VjcmV0LXdyb25n")
    assert runner.post("/hooks/loops", forged, headers).status_code == 401
    with socket.create_connection(("127.0.0.1", runner.port), timeout=10) as sock:
        sock.sendall(b"POST /hooks/loops HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000)
        assert sock.recv(100).startswith(b"HTTP/1.1 431")
    wait_until(lambda: len([r for r in runner.runs() if r["status"] == "succeeded"]) == 3, "runs")

    answer = scrape(ui)
    assert answer.status_code == 200
    m = samples(answer.text)
    assert m[("automations_runs_total", (("recipe", "loops-hook"), ("status", "succeeded")))] == 3
    assert m[("automations_requests_total", (("connection", "loops"), ("status", "200")))] == 3
    assert m[("automations_intake_rejections_total", (("reason", "signature"),))] == 1
    assert m[("automations_intake_rejections_total", (("reason", "header_size"),))] == 1
    assert m[("automations_intake_rejections_total", (("reason", "size"),))] == 0
    assert m[("automations_store_up", ())] == 1
    assert m[("automations_recipes_loaded", ())] == 1
    assert len(fakes.loops_events()) == 3
    for secret in (LOOPS_KEY, HOOK_SECRET, UI_TOKEN, "lead0@example.com", "intruder"):
        assert secret not in answer.text
    assert fakes.loops_url.removeprefix("http://") not in answer.text


def test_with_the_token_set_a_scrape_without_it_is_401_not_the_login_page(
    start_runner: StartRunner, recipes_dir: Path, fakes: Fakes
) -> None:
    write_recipe(recipes_dir, "hook.yaml", LOOPS_HOOK)
    port = free_port()
    start_runner(recipes_dir, "--ui-port", str(port), env={"AUTOMATIONS_UI_TOKEN": UI_TOKEN})
    ui = f"http://127.0.0.1:{port}"
    for token in (None, "wrong"):
        answer = scrape(ui, token)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="automations"'
        assert "automations_" not in answer.text
    assert scrape(ui).status_code == 200


def test_without_a_token_the_loopback_console_serves_it_to_loopback_names_only(
    start_runner: StartRunner, recipes_dir: Path, fakes: Fakes
) -> None:
    write_recipe(recipes_dir, "hook.yaml", LOOPS_HOOK)
    port = free_port()
    start_runner(recipes_dir, "--ui-port", str(port), env={"AUTOMATIONS_UI_TOKEN": None})
    ui = f"http://127.0.0.1:{port}"
    assert scrape(ui, None).status_code == 200
    # a page elsewhere whose name resolves to 127.0.0.1 (DNS rebinding) reads nothing
    rebound = httpx.get(f"{ui}/metrics", headers={"Host": "evil.example:80"}, timeout=10)
    assert rebound.status_code == 421
