"""The console in a real browser: Debian's headless Chromium driven by Selenium, against the
real ``automations run`` and loopback fakes of the providers.

Skipped where Chromium and chromedriver are not installed, except under ``CI=true``, where a
missing browser is a failure (``.ci/run`` installs it). Each test saves screenshots into its
temporary directory; ``docs/console-runs.png`` and ``docs/console-run.png`` were taken by them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import (
    LOOPS_HOOK,
    Fakes,
    StartRunner,
    dumps,
    standard_headers,
    write_recipe,
)
from tests.acceptance.runner_process import RunnerProcess, free_port, wait_until

pytestmark = [pytest.mark.acceptance, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "ui-token-for-the-browser-tests"
PEOPLE = ["ada@example.com", "grace@example.com", "katherine@example.com"]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver are not installed (.ci/run installs them)")
        pytest.skip("chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    # A click that navigates returns before the next page is parsed: find_element waits for the
    # element (up to 10 s) instead of failing on the page still loading, on a busy machine.
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


def _post(runner: RunnerProcess, email: str, msg_id: str) -> None:
    body = dumps({"email": email})
    assert runner.post("/hooks/loops", body, standard_headers(body, msg_id)).status_code == 202


def _runner(
    start_runner: StartRunner, recipes_dir: Path, *args: str, **kw: Any
) -> tuple[RunnerProcess, str]:
    write_recipe(recipes_dir, "hook.yaml", LOOPS_HOOK)
    ui = free_port()
    runner = start_runner(recipes_dir, "--ui-port", str(ui), *args, **kw)
    return runner, f"http://127.0.0.1:{ui}"


def _rows(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        row.get_attribute("data-run-id")
        for row in driver.find_elements(By.CSS_SELECTOR, "#run-rows tr[data-run-id]")
    ]


def test_a_new_run_appears_live_and_opens(
    browser: Any, start_runner: StartRunner, recipes_dir: Path, fakes: Fakes, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    runner, ui = _runner(start_runner, recipes_dir)
    fakes.loops.script(400)  # the first delivery fails: a failed run with its error on the list
    for n, email in enumerate(PEOPLE[:2]):
        _post(runner, email, f"msg_{n}")
    wait_until(
        lambda: len(runner.runs()) == 2 and all(r["status"] != "pending" for r in runner.runs()),
        "two finished runs",
    )
    browser.get(f"{ui}/runs")
    assert browser.title == "Runs · automations"
    assert len(_rows(browser)) == 2
    browser.execute_script("window.notReloaded = true")
    wait_until(lambda: "Live:" in browser.find_element(By.ID, "live-state").text, "the stream")
    _post(runner, PEOPLE[2], "msg_live")
    newest = wait_until(lambda: len(_rows(browser)) == 3 and _rows(browser)[0], "the live row")
    assert browser.execute_script("return window.notReloaded") is True  # no reload
    runs = runner.runs()
    assert newest == runs[0]["id"]
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{newest}"]')
    badge = f'tr[data-run-id="{newest}"] .badge'
    wait_until(
        lambda: "succeeded" in browser.find_element(By.CSS_SELECTOR, badge).text,
        "its status, in place",
    )
    assert row.find_element(By.CSS_SELECTOR, ".key").text == "msg_live"
    time.sleep(3.5)  # the highlight of a new row fades before the screenshot
    browser.save_screenshot(str(tmp_path / "console-runs.png"))
    browser.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{newest}"] a.open').click()
    wait_until(lambda: browser.current_url.endswith(f"/runs/{newest}"), "the run page")
    assert browser.find_element(By.ID, "run-status").text == "succeeded"
    assert "katherine@example.com" in browser.page_source  # in full on the run page
    browser.save_screenshot(str(tmp_path / "console-run.png"))
    # the browser saw no error from the page (no CSP violation, no script error)
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert logs == []


def test_replay_a_failed_run_and_see_the_new_run(
    browser: Any, start_runner: StartRunner, recipes_dir: Path, fakes: Fakes, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    runner, ui = _runner(start_runner, recipes_dir)
    fakes.loops.script(400)
    _post(runner, PEOPLE[0], "msg_fail")
    failed = wait_until(
        lambda: [r for r in runner.runs() if r["status"] == "failed"], "the failed run"
    )[0]["id"]
    browser.get(f"{ui}/runs?status=failed")
    browser.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{failed}"] a.replay').click()
    plan = browser.find_element(By.ID, "plan").text
    assert "loops.send_event (failed)" in plan
    browser.find_element(By.ID, "confirm-replay").click()
    wait_until(lambda: "replay of" in browser.find_element(By.ID, "notice").text, "the notice")
    replay = browser.current_url.split("/runs/")[1].split("?")[0]
    assert replay != failed

    def finished() -> bool:
        browser.refresh()
        return browser.find_element(By.ID, "run-status").text == "succeeded"

    wait_until(finished, "the replay to succeed", interval=0.5)
    assert browser.find_element(By.CSS_SELECTOR, "a.chain-back").text == failed[:12]
    assert fakes.loops.count == 2  # the failed delivery and the replay: nothing twice
    assert runner.show(failed)["replayed_as"] == replay
    assert runner.show(failed)["audit"][0]["action"] == "replay"


def test_log_in_with_the_token_on_a_non_loopback_bind(
    browser: Any, start_runner: StartRunner, recipes_dir: Path, fakes: Fakes
) -> None:
    from selenium.webdriver.common.by import By

    runner, ui = _runner(
        start_runner, recipes_dir, "--ui-host", "0.0.0.0", env={"AUTOMATIONS_UI_TOKEN": TOKEN}
    )
    _post(runner, PEOPLE[0], "msg_login")
    wait_until(lambda: runner.runs(), "the run")
    browser.get(f"{ui}/runs")
    assert browser.current_url == f"{ui}/login"
    assert "msg_login" not in browser.page_source
    browser.find_element(By.ID, "token").send_keys("not the token")
    browser.find_element(By.ID, "login").click()
    assert "that is not the token" in browser.find_element(By.CSS_SELECTOR, ".problem").text
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "name").send_keys("Grace")
    browser.find_element(By.ID, "login").click()
    wait_until(lambda: browser.current_url == f"{ui}/runs", "the runs page")
    assert "msg_login" in browser.page_source
    [cookie] = browser.get_cookies()
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert TOKEN not in cookie["value"]
    wait_until(lambda: "Live:" in browser.find_element(By.ID, "live-state").text, "the stream")
    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait_until(lambda: browser.current_url == f"{ui}/login", "the login page")
    browser.get(f"{ui}/runs")
    assert browser.current_url == f"{ui}/login"
