"""The runner's HTTP face: ``GET /healthz`` and every recipe's webhook path."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from automations.runner.inbox import GroupCommit
from automations.runner.service import Runner
from automations.triggers.webhook import DEFAULT_MAX_BODY, WebhookIntake

__all__ = ["build_app"]

_ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def build_app(runner: Runner, *, max_body: int = DEFAULT_MAX_BODY) -> Starlette:
    inbox = GroupCommit(runner.accept_batch)
    intake = WebhookIntake(
        lambda path: runner.recipes.webhook(path),
        runner.env,
        inbox.accept,
        max_body=max_body,
        on_reject=runner.metrics.intake_rejected,
    )

    async def healthz(request: Request) -> Response:
        health = runner.health
        body = health.answer(detail=health.authorized(request.headers.get("authorization")))
        return JSONResponse(body, status_code=200 if health.started else 503)

    async def hook(request: Request) -> Response:
        if runner.dispatcher.closed:
            runner.metrics.intake_rejected("shutting_down")
            return JSONResponse({"error": "shutting down; retry later"}, status_code=503)
        runner.pressure.note()
        return await intake.handle(request)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/{path:path}", hook, methods=_ALL),
        ]
    )
