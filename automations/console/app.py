"""The console's Starlette application: its routes, its guard, its templates.

Every response carries a strict Content-Security-Policy (scripts and styles from the console's
own files only: no inline script, no CDN), ``Cache-Control: no-store``, ``nosniff``, no framing.
Every request passes the guard (``auth.Gate``) before any page, the event stream or a static
file; a POST also proves it comes from the console's own pages (``Origin``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from automations.console import operate, overview, runs
from automations.console.auth import COOKIE, SESSION_S, Gate, Session, same_origin
from automations.console.forms import read_form
from automations.console.host import ConsoleHost
from automations.console.overview import Window
from automations.console.render import FILTERS
from automations.execution.resolve import current_actor
from automations.ports import Store
from automations.stores.thread import StoreThread

__all__ = ["Console", "build_console"]

_HERE = Path(__file__).parent

#: Sent with every response.
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" on a
    # form POST, and the Origin check would refuse the console's own forms
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)

#: Paths read by programs (the event stream, a metrics scraper): 401 without a session, not
#: the login page.
_PROGRAMS = frozenset({"/events", "/metrics"})
#: Paths open without a session (the login page and what it shows; never a run).
_PUBLIC = ("/login", "/static/console.css", "/static/favicon.svg")


@dataclass
class Console:
    """What the pages share: the store (read and written on the console's own thread), the
    running process, the access rules."""

    store: Store
    host: ConsoleHost
    gate: Gate
    #: Set when the process stops: open event streams end.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    io: StoreThread = field(default_factory=lambda: StoreThread("store-console"))
    clock: Callable[[], float] = time.time
    #: How often the event stream looks for new runs.
    poll_s: float = 1.0
    #: The most runs one bulk replay takes.
    bulk_cap: int = 5000
    templates: Jinja2Templates = field(init=False)
    #: 429s per connection over the last minute (``sample_pace``).
    throttled: Window = field(default_factory=Window)

    def __post_init__(self) -> None:
        env = jinja2.Environment(
            loader=jinja2.PackageLoader("automations.console", "templates"),
            autoescape=jinja2.select_autoescape(["html"], default=True),
            undefined=jinja2.StrictUndefined,
        )
        env.filters.update(FILTERS)
        self.templates = Jinja2Templates(env=env)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the console's store thread (never on the event loop)."""
        return await self.io(fn, *args)

    def actor(self, request: Request) -> str:
        """Who acts, for the audit: the name given at login, else the runner's operating-system
        user (the CLI's rule: ``--by``, else the user)."""
        session: Session | None = request.scope.get("console.session")
        return (session.actor if session else None) or current_actor()

    def page(
        self, request: Request, name: str, context: Mapping[str, Any], status: int = 200
    ) -> Response:
        ctx = {"gate_open": self.gate.open, "path": request.url.path, **context}
        return self.templates.TemplateResponse(request, name, ctx, status_code=status)

    def sample_pace(self) -> None:
        """Take a sample of the host's 429 counters (every few seconds, and at each view)."""
        self.throttled.add(self.clock(), self.host.throttled())

    async def sample_forever(self, every_s: float = 5.0) -> None:
        """``sample_pace`` until the console stops."""
        while not self.stopping.is_set():
            self.sample_pace()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=every_s)

    def close(self) -> None:
        self.io.close()


class _Guard:
    """Security headers on every response; the session, the host and the origin checked."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k not in _OWN_HEADERS]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS]}
            await send(message)

        request = Request(scope)
        refusal = self._check(request)
        if refusal is not None:
            await refusal(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)

    def _check(self, request: Request) -> Response | None:
        gate = self.console.gate
        if not gate.host_allowed(request.headers.get("host")):
            return PlainTextResponse(
                "the console answers only to its loopback address (127.0.0.1, localhost); "
                "to reach it by another name, set AUTOMATIONS_UI_TOKEN",
                status_code=421,
            )
        if request.method not in ("GET", "HEAD") and not same_origin(
            request.headers, request.url.scheme
        ):
            return PlainTextResponse(
                "refused: this request does not come from the console's own pages "
                "(its Origin header is missing or names another site)",
                status_code=403,
            )
        session = gate.session(request.cookies.get(COOKIE)) or gate.bearer(
            request.headers.get("authorization")
        )
        if session is None:
            path = request.url.path
            if path in _PUBLIC or (path == "/logout" and request.method == "POST"):
                return None
            if path in _PROGRAMS or request.method != "GET":
                return PlainTextResponse(
                    "log in first (a program sends Authorization: Bearer <token>)",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="automations"'},
                )
            return RedirectResponse("/login", status_code=303)
        request.scope["console.session"] = session
        return None


_OWN_HEADERS = frozenset(name for name, _ in SECURITY_HEADERS)


def _login_routes(console: Console) -> list[BaseRoute]:
    async def login_form(request: Request) -> Response:
        if console.gate.open:
            return RedirectResponse("/runs", status_code=303)
        return console.page(request, "login.html", {"error": None})

    async def login(request: Request) -> Response:
        gate = console.gate
        if gate.open:
            return RedirectResponse("/runs", status_code=303)
        client = request.client.host if request.client else "?"
        if gate.throttled(client):
            return console.page(
                request,
                "login.html",
                {"error": "too many failed attempts: wait a minute and try again"},
                status=429,
            )
        form = await read_form(request)
        token = form.get("token", "")
        name = " ".join(form.get("name", "").split())[:80] or None
        if not gate.check_token(client, token):
            return console.page(
                request, "login.html", {"error": "that is not the token"}, status=401
            )
        response = RedirectResponse("/runs", status_code=303)
        response.set_cookie(
            COOKIE,
            gate.issue(name),
            max_age=SESSION_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]


def build_console(
    store: Store,
    host: ConsoleHost,
    gate: Gate,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    **options: Any,
) -> Starlette:
    """The console's application over ``store`` (a connection of its own) inside ``host``.
    ``extra_routes`` are mounted behind the same guard (``/metrics``). ``options`` are
    ``Console``'s fields (``poll_s``, ``bulk_cap``, ``clock``, ``stopping``)."""
    console = Console(store, host, gate, **options)

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    routes: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        *_login_routes(console),
        *runs.routes(console),
        *operate.routes(console),
        *overview.routes(console),
        *extra_routes,
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.console = console
    app.add_middleware(_Guard, console=console)
    return app


Handler = Callable[[Request], Awaitable[Response]]
