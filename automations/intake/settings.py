"""What the runner tells its intake process at start (``wire``'s ``("config", ...)``)."""

from __future__ import annotations

from dataclasses import dataclass

from automations.runner.httpguard import HttpLimits

__all__ = ["IntakeConfig"]


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    #: The run store: a SQLite file (the intake records into its inbox file) or a PostgreSQL
    #: URL (sent over the pipe, never on a command line: it may hold a password).
    db: str
    #: The webhook port's listening socket, inherited under this descriptor number.
    sock_fd: int
    max_body: int
    limits: HttpLimits
    log_format: str = "text"
    #: What its PostgreSQL connection shows in ``pg_stat_activity``.
    application_name: str = "automations:intake"
