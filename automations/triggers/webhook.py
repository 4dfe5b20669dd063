"""Where a webhook comes in: verify, de-duplicate, record durably, answer.

Answers: 202 once the event is recorded as a run (body: the run id); 200 for a repeated delivery
of an event already recorded (no second run); 401 bad or missing signature (nothing recorded);
400 a body that is not JSON the engine takes (``payload.parse_event``: NaN, Infinity, 1e999, a
lone surrogate, nesting over 64 levels, an integer over 4,300 digits; nothing recorded); 404 no
recipe on that path; 405 not a POST; 413 body over the limit.
The signature is checked over the raw bytes before the body is parsed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from automations.conditions import EVALUATION_ERRORS
from automations.errors import ConfigError, EventError, SignatureError
from automations.execution.executor import new_run
from automations.model import Trigger, WebhookTrigger
from automations.records import RunRecord, TriggerKind
from automations.throttled_log import ThrottledLog
from automations.triggers.payload import parse_event
from automations.triggers.verify import default_event_id, verify_webhook

__all__ = ["DEFAULT_MAX_BODY", "Answer", "WebhookIntake"]

log = logging.getLogger("automations.runner")

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB

#: Records a run durably (or finds the one already recorded for its event); returns the stored
#: run and whether it is new, or an awaitable of them (the runner's group commit, which answers
#: once the commit holding the run is done). New runs are handed to the dispatcher by the callee.
Accept = Callable[
    [RunRecord, str | None], tuple[RunRecord, bool] | Awaitable[tuple[RunRecord, bool]]
]


#: An answer: status, JSON body, extra headers.
Answer = tuple[int, bytes, dict[str, str]]
_JSON = "application/json"


class Hook(Protocol):
    """What the intake needs of a webhook recipe (a ``Recipe``, or the intake process's
    ``WebhookRoute``)."""

    @property
    def name(self) -> str: ...

    @property
    def trigger(self) -> Trigger: ...


class _TooLarge(Exception):
    pass


def _ignore(reason: str) -> None:
    return None


def _error_body(message: str) -> bytes:
    # the bytes JSONResponse({"error": message}) sends
    return json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":")).encode()


def _run_body(run_id: str, status: str) -> bytes:
    return f'{{"run_id":{json.dumps(run_id)},"status":"{status}"}}'.encode()


class WebhookIntake:
    """The ASGI endpoint for every webhook path; looks recipes up per request, so hot reload
    moves, adds and removes paths without restarting the server."""

    def __init__(
        self,
        lookup: Callable[[str], Hook | None],
        env: Mapping[str, str],
        accept: Accept,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        tolerance_s: float = 300.0,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self.lookup = lookup
        self.env = env
        self.accept = accept
        self.max_body = max_body
        self.tolerance_s = tolerance_s
        #: Rejections are caused from outside: logged, never faster than a bounded rate.
        self.rejections = ThrottledLog(log)
        #: Told why each request was refused (a fixed word: ``metrics.REJECTION_REASONS``).
        self.on_reject = on_reject or _ignore

    async def handle(self, request: Request) -> Response:
        """``answer`` as a Starlette response (the runner's in-process intake, tests)."""
        status, body, headers = await self.answer(request.scope, request.receive)
        return Response(body, status_code=status, headers=headers, media_type=_JSON)

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        """The answer to the webhook request ``scope`` whose body ``receive`` gives (ASGI):
        the intake process serves it without a framework in between."""
        path: str = scope["path"]
        recipe = self.lookup(path)
        if recipe is None:
            return self._reject(scope, 404, f"no recipe serves {path}", "not_found")
        if scope["method"] != "POST":
            self.on_reject("method")
            return 405, _error_body("use POST"), {"Allow": "POST"}
        try:
            body = await self._read(scope, receive)
        except _TooLarge:
            return self._reject(scope, 413, f"body larger than {self.max_body} bytes", "size")
        except ClientDisconnect:  # gone (or cut off by the body timeout): nothing recorded
            return self._reject(
                scope, 400, "the client went away before its body arrived", "disconnected"
            )
        trigger = recipe.trigger
        assert isinstance(trigger, WebhookTrigger)
        secret = self.env.get(trigger.secret_env) if trigger.secret_env else None
        # header names arrive lower-cased (ASGI); a repeated header: the last one counts
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            verify_webhook(
                trigger.scheme,
                secret=secret,
                headers=headers,
                body=body,
                header=trigger.header,
                tolerance_s=self.tolerance_s,
            )
        except SignatureError as exc:
            return self._reject(scope, 401, str(exc), "signature")
        except ConfigError as exc:
            # the runner lacks (or cannot use) the secret: the operator is told what to set; the
            # caller only that it cannot be taken now (the provider will retry)
            log.error(
                "webhook %s refused: %s (set %s)",
                trigger.path,
                exc,
                trigger.secret_env or "the webhook secret",
            )
            self.on_reject("not_configured")
            return 503, _error_body("webhook verification is not configured on this runner"), {}
        try:
            payload = parse_event(body)
        except EventError as exc:
            return self._reject(scope, 400, str(exc), "bad_body")
        event_key = self._event_key(trigger, headers, payload, body)
        try:
            accepted = self.accept(
                new_run(recipe.name, TriggerKind.WEBHOOK, event_key, payload), None
            )
            run, is_new = accepted if isinstance(accepted, tuple) else await accepted
        except Exception as exc:  # the store could not record it: nothing was accepted
            # 503 with Retry-After, not 500: the provider retries the same delivery, and the
            # event is recorded then (or answered as a duplicate if this commit did land).
            log.error("webhook %s could not be recorded: %s", trigger.path, exc)
            self.on_reject("store")
            return (
                503,
                _error_body("the event could not be recorded now; retry later"),
                {"Retry-After": "5"},
            )
        if is_new:
            return 202, _run_body(run.id, "accepted"), {}
        return 200, _run_body(run.id, "duplicate"), {}

    def _reject(self, scope: Scope, status: int, reason: str, kind: str) -> Answer:
        """Answer ``status`` with ``reason``, count it as ``kind``, and log the rejection for the
        operator (a delivery the provider will retry, or someone probing). ``reason`` never holds
        a secret: signature errors name the header at fault, never its value or the expected
        one."""
        self.on_reject(kind)
        client = scope.get("client")
        self.rejections.warning(
            "webhook rejections",
            "webhook %r rejected with %d: %s%s",
            scope["path"],
            status,
            reason,
            f" (from {client[0]})" if client else "",
        )
        return status, _error_body(reason), {}

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_body:
                    raise _TooLarge
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    def _event_key(
        trigger: WebhookTrigger, headers: Mapping[str, str], payload: Any, body: bytes
    ) -> str:
        if trigger.event_id is not None:
            try:
                value = trigger.event_id.search(payload)
            except EVALUATION_ERRORS:
                value = None
            if value is not None and value != "":
                return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        default = default_event_id(trigger.scheme, headers, payload)
        if default:
            return default
        # no identity: identical bodies are one event (a provider's retry of the same delivery)
        return "sha256:" + hashlib.sha256(body).hexdigest()
