"""The runner's log: secrets never reach it, not even inside a traceback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest

from automations.runner.logs import configure_logging, iso_time, log_secrets

KEY = "loops-live-key-0123456789"
ENV = {"LOOPS_API_KEY": KEY, "SIGNUP_SECRET": "whsec_c2VjcmV0LXZhbHVl", "HOME": "/root/home"}


@pytest.fixture
def automations_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("automations")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved


def test_only_secret_looking_variables_are_secrets() -> None:
    assert set(log_secrets(ENV)) == {"LOOPS_API_KEY", "SIGNUP_SECRET"}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_masked_in_messages_and_tracebacks(
    fmt: str, automations_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(fmt, secrets=log_secrets(ENV))
    log = logging.getLogger("automations.runner")
    try:
        raise RuntimeError(f"bad answer for key {KEY}")
    except RuntimeError:
        log.exception("run r1 could not be executed (secret %s)", ENV["SIGNUP_SECRET"])
    err = capsys.readouterr().err
    assert KEY not in err and ENV["SIGNUP_SECRET"] not in err
    assert "${LOOPS_API_KEY}" in err and "${SIGNUP_SECRET}" in err
    assert "RuntimeError" in err  # the traceback is still there
    if fmt == "json":
        assert json.loads(err)["level"] == "error"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_line_carries_its_utc_offset(
    fmt: str,
    automations_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a runner in another time zone still writes the instant, with its offset
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        configure_logging(fmt)
        record = logging.LogRecord("automations.runner", logging.INFO, "", 0, "hello", (), None)
        record.created, record.msecs = 1_800_000_000.25, 250.0
        logging.getLogger("automations.runner").handle(record)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    line = capsys.readouterr().err.strip()
    stamp = json.loads(line)["ts"] if fmt == "json" else line.split(" ", 1)[0]
    assert stamp == "2027-01-15T08:00:00.250Z"
    assert iso_time(1_800_000_000.25) == stamp
