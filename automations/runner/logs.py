"""Log output: one line per run outcome, as text or JSON.

Every line's time is UTC in ISO 8601 with its offset and milliseconds
(``2026-11-30T02:05:19.123Z``), in both formats: a line read elsewhere (another time zone, a log
collector) means one instant.

Messages are redacted where they are made; as a safety net, every formatted line (tracebacks
included) is passed through a ``Redactor`` for the secrets the runner was started with.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from automations.endpoints import is_secret_name
from automations.redact import Redactor

__all__ = ["configure_logging", "iso_time", "log_secrets"]


def iso_time(created: float) -> str:
    """``created`` (unix seconds) as ISO 8601 UTC with milliseconds and ``Z``."""
    whole = int(created)
    ms = int((created - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_time(record.created)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        run = getattr(record, "run", None)
        if isinstance(run, dict):
            out.update(run)
        else:
            run_id = getattr(record, "run_id", None)  # a line about one run: its id, whole
            if isinstance(run_id, str):
                out["run_id"] = run_id
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class _Redacting(logging.Formatter):
    """``inner``'s line with every secret value replaced by its variable's name."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self._inner = inner
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.text(self._inner.format(record))


def log_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` whose names say they hold secrets (``*_API_KEY``, ``*_SECRET``,
    ``*_TOKEN``...), to keep out of the log."""
    return {name: value for name, value in env.items() if is_secret_name(name)}


def configure_logging(
    fmt: str = "text", level: int = logging.INFO, *, secrets: Mapping[str, str] | None = None
) -> None:
    """Log ``automations.*`` to stderr as ``fmt`` ("text" or "json"), with the values of
    ``secrets`` (``{variable: value}``) masked in every line."""
    handler = logging.StreamHandler(sys.stderr)
    inner: logging.Formatter = _JsonFormatter() if fmt == "json" else _TextFormatter()
    handler.setFormatter(_Redacting(inner, Redactor(secrets)))
    root = logging.getLogger("automations")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
