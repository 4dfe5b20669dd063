"""What the runner tells its intake process at start (``wire``'s ``("config", ...)``)."""

from __future__ import annotations

from dataclasses import dataclass

from automations.model import Recipe, WebhookTrigger
from automations.runner.httpguard import HttpLimits

__all__ = ["IntakeConfig", "WebhookRoute", "route_of"]


@dataclass(frozen=True, slots=True)
class WebhookRoute:
    """What the intake process needs of a webhook recipe: its name and trigger, and the whole
    recipe only when it upserts (its runs' order key is the upsert's key, computed from the
    event: ``runner.ordering``). Sending 10,000 whole recipes took 0.6 s to pickle."""

    name: str
    trigger: WebhookTrigger
    upserts: Recipe | None = None


def route_of(recipe: Recipe) -> WebhookRoute:
    assert isinstance(recipe.trigger, WebhookTrigger)
    upserts = recipe if any(a.response_as for a in recipe.actions) else None
    return WebhookRoute(recipe.name, recipe.trigger, upserts)


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
