"""The intake process: serves the webhook port (every recipe's webhook path and ``/healthz``).

It verifies each webhook, records its event durably (``Inbox``: a SQLite run store's inbox
file, or the PostgreSQL store) with the others of the same turn in one commit, answers, and
tells the runner what it recorded. It never executes anything, so what the runner does (runs,
table scans, pruning, a resume of a million runs) never delays an answer: the two are separate
processes, each with its own interpreter lock and its own CPU.

The runner (its parent) sends the webhook recipes (again when they change), answers
``/healthz`` for it (the intake process waits ``HEALTH_WAIT_S`` at most, then answers from the
runner's last answer), and says when to stop. The intake process ends with its parent: on
Linux the kernel kills it (``PR_SET_PDEATHSIG``), elsewhere it stops when the pipe closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from automations.errors import AutomationsError
from automations.intake.settings import IntakeConfig, WebhookRoute
from automations.intake.wire import FLUSH_S, encode, open_pipes
from automations.model import Recipe
from automations.ports import Inbox
from automations.records import RunRecord
from automations.runner.embedded import EmbeddedServer
from automations.runner.health import Health
from automations.runner.httpguard import guarded_protocol
from automations.runner.inbox import GroupCommit
from automations.runner.logs import configure_logging, log_secrets
from automations.runner.ordering import order_key_for
from automations.stores.inbox import open_inbox
from automations.stores.sqlite_inbox import SQLiteInbox
from automations.stores.thread import StoreThread
from automations.triggers.webhook import Answer, WebhookIntake

__all__ = ["main"]

log = logging.getLogger("automations.runner")

#: How long ``/healthz`` waits for the runner's own answer before giving its last one.
HEALTH_WAIT_S = 0.05
_JSON = b"application/json"
#: A last answer older than this is not given: the runner is not answering (503).
HEALTH_STALE_S = 10.0
_PR_SET_PDEATHSIG = 1


class Intake:
    """The intake process's state: the webhook recipes, the pipe to the runner, the health
    answers waited for."""

    def __init__(self) -> None:
        self.hooks: dict[str, WebhookRoute] = {}
        #: The recipes (by name) whose runs are ordered by an upsert's key.
        self.upserts: dict[str, Recipe] = {}
        self.config: asyncio.Future[IntakeConfig] = asyncio.get_running_loop().create_future()
        self.recipes_in = asyncio.Event()
        self.closing = False
        self.server: uvicorn.Server | None = None
        self.transport: asyncio.WriteTransport | None = None
        self.rejected: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._asked: dict[int, asyncio.Future[tuple[int, dict[str, Any]]]] = {}
        #: The runner's last ``/healthz`` answer by detail or not: (when, code, body).
        self._last: dict[bool, tuple[float, int, dict[str, Any]]] = {}

    # -- from the runner ---------------------------------------------------------------------

    def on_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "config":
            self.config.set_result(message[1])
        elif kind == "recipes":
            for path in message[2]:
                self.hooks.pop(path, None)
            self.hooks.update(message[1])
            self.upserts = {r.name: r.upserts for r in self.hooks.values() if r.upserts}
            self.recipes_in.set()
        elif kind == "health":
            future = self._asked.pop(message[1], None)
            if future is not None and not future.done():
                future.set_result((message[2], message[3]))
        elif kind == "stop":
            self.stop()

    def on_close(self) -> None:
        """The runner is gone (or closed the pipe): stop."""
        self.stop()

    def stop(self) -> None:
        self.closing = True
        if self.server is not None:
            self.server.should_exit = True

    def send(self, message: tuple[Any, ...]) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(encode(message))

    # -- answers -----------------------------------------------------------------------------

    async def health(self, detail: bool) -> tuple[int, dict[str, Any]]:
        """The runner's answer to ``/healthz`` (``HEALTH_WAIT_S`` at most), else its last one
        while recent, else 503."""
        loop = asyncio.get_running_loop()
        request = next(self._ids)
        future: asyncio.Future[tuple[int, dict[str, Any]]] = loop.create_future()
        self._asked[request] = future
        self.send(("health?", request, detail))
        try:
            code, body = await asyncio.wait_for(future, HEALTH_WAIT_S)
        except TimeoutError:
            self._asked.pop(request, None)
            last = self._last.get(detail)
            if last is None or time.monotonic() - last[0] > HEALTH_STALE_S:
                return 503, {"status": "unresponsive", "recipes": len(self.hooks), "errors": 1}
            return last[1], last[2]
        self._last[detail] = (time.monotonic(), code, body)
        return code, body

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    async def flush_forever(self) -> None:
        """Report the rejections counted, at most every ``FLUSH_S``."""
        while True:
            await asyncio.sleep(FLUSH_S)
            self.flush()

    def flush(self) -> None:
        if self.rejected:
            self.send(("rejected", dict(self.rejected)))
            self.rejected.clear()


def _build_app(intake: Intake, inbox: Inbox, config: IntakeConfig) -> ASGIApp:
    """The webhook port's ASGI app: ``/healthz`` and every recipe's webhook path, served
    without a framework (each request's cost is mostly what it must do: verify, parse,
    record)."""
    io = StoreThread("intake-store")
    inline = isinstance(inbox, SQLiteInbox)
    token = Health.from_env(os.environ)

    async def record(items: Sequence[tuple[RunRecord, str | None]]) -> list[tuple[RunRecord, bool]]:
        # a SQLite inbox commits in microseconds, never syncing the disk (its checkpoints are
        # made on a thread of their own): on this loop, without a thread hop per commit; a
        # database over the network is waited for on a thread, the loop serving meanwhile
        results = inbox.record(items) if inline else await io(inbox.record, items)
        new: dict[str, int] = {}
        for run, is_new in results:
            if is_new:
                new[run.recipe] = new.get(run.recipe, 0) + 1
        if new:
            intake.send(("recorded", new, len(items)))
        return results

    commit = GroupCommit(record)

    def accept(run: RunRecord, key: str | None) -> Awaitable[tuple[RunRecord, bool]]:
        upserts = intake.upserts.get(run.recipe)
        return commit.accept(run, key if upserts is None else order_key_for(run, upserts))

    webhooks = WebhookIntake(
        intake.hooks.get,
        os.environ,
        accept,
        max_body=config.max_body,
        on_reject=intake.reject,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            if scope["path"] == "/healthz" and scope["method"] in ("GET", "HEAD"):
                authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
                code, body = await intake.health(token.authorized(authorization.decode("latin-1")))
                answer: Answer = (code, _json(body), {})
            elif intake.closing:
                intake.reject("shutting_down")
                answer = (503, _json({"error": "shutting down; retry later"}), {})
            else:
                answer = await webhooks.answer(scope, receive)
        except Exception:
            log.exception("the webhook intake failed on %s", scope["path"])
            answer = (500, _json({"error": "internal error"}), {})
        status, body_bytes, extra = answer
        headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(body_bytes))]
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body_bytes})

    return app


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


async def _serve(read_fd: int, write_fd: int) -> None:
    intake = Intake()
    intake.transport = await open_pipes(read_fd, write_fd, intake.on_message, intake.on_close)
    config = await intake.config
    configure_logging(config.log_format, secrets=log_secrets(os.environ))
    try:
        inbox = await asyncio.to_thread(
            open_inbox, config.db, application_name=config.application_name
        )
    except AutomationsError as exc:  # said once, as the runner says its own errors
        log.error("the webhook intake cannot start: %s", exc)
        raise SystemExit(1) from None
    try:
        app = _build_app(intake, inbox, config)
        server = EmbeddedServer(
            uvicorn.Config(
                app,
                http=guarded_protocol(config.limits, intake.reject),
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=5,
            )
        )
        intake.server = server
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, intake.stop)
        await intake.recipes_in.wait()
        intake.send(("ready",))
        flusher = loop.create_task(intake.flush_forever())
        sock = socket.socket(fileno=config.sock_fd)
        if not intake.closing:
            await server.serve(sockets=[sock])
        flusher.cancel()
        intake.flush()
    finally:
        await asyncio.to_thread(inbox.close)


def _die_with_parent(parent: int) -> None:
    """On Linux, be killed when the runner dies (however it dies: a SIGKILL included)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)


def main(argv: Sequence[str] = sys.argv[1:], env: Mapping[str, str] = os.environ) -> None:
    read_fd, write_fd, parent = (int(a) for a in argv[:3])
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the runner, which stops us
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is optional (not on Windows)
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(read_fd, write_fd))
