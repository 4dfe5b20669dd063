"""Fake Quo and Loops: ``httpx.MockTransport`` handlers that can also run on real loopback.

A fake checks what the real service checks (auth header, request body against the vendor's full
OpenAPI spec, 10 requests per second per key) and records everything it received, so tests assert
on what actually went over the wire. Scripted faults (``fake.script(503, TIMEOUT_AFTER_RECEIPT)``)
answer the next requests in order, after the auth and rate checks.

    fake = QuoFake(keys={"k"}, window="fixed")
    Connections(settings, transport=httpx.MockTransport(fake.handler))
    async with serve_on_loopback(fake) as base_url: ...      # the same fake over real HTTP
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "TIMEOUT_AFTER_RECEIPT",
    "FakeProvider",
    "Received",
    "SpecValidator",
    "VirtualClock",
    "serve_on_loopback",
    "vendor_dir",
]

Window = Literal["fixed", "sliding"]
#: Script this to have the fake process a request, then lose the answer (``httpx.ReadTimeout``).
TIMEOUT_AFTER_RECEIPT = "timeout-after-receipt"
# Raised by a client before the request leaves: the fake never sees such a request.
_NOT_ARRIVED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def vendor_dir() -> Path:
    """``$AUTOMATIONS_VENDOR_DIR``, else the repository's own ``specs/`` folder."""
    env = os.environ.get("AUTOMATIONS_VENDOR_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "specs"


class VirtualClock:
    """Virtual time for ``Connections``, ``RateLimiter`` and the fakes: ``sleep`` returns at once
    and moves the clock forward. Sleeps run one after another, which matches the limiter (only the
    lock holder sleeps) and single sends; it is not a scheduler for overlapping sleepers."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class SpecValidator:
    """Validates bodies against one full OpenAPI 3.1 spec, ``$ref``s resolved in place."""

    def __init__(self, filename: str) -> None:
        self.spec: dict[str, Any] = json.loads((vendor_dir() / filename).read_text("utf-8"))
        self._uri = f"urn:{filename}"
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(self._uri, resource)

    def _validator(self, pointer: str) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(
            {"$ref": f"{self._uri}#{pointer}"}, registry=self._registry
        )

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        op: dict[str, Any] | None = self.spec["paths"].get(path, {}).get(method.lower())
        return op

    def request_errors(self, method: str, path: str, body: Any) -> list[str]:
        pointer = (
            f"/paths/{_escape(path)}/{method.lower()}/requestBody/content/application~1json/schema"
        )
        return [_message(e) for e in self._validator(pointer).iter_errors(body)]

    def match(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """The spec's path template for a concrete ``path`` (``/v1/contacts/abc`` ->
        ``/v1/contacts/{id}``) and the path parameters' values, when ``method`` is defined."""
        parts = path.strip("/").split("/")
        for template, ops in self.spec["paths"].items():
            if method.lower() not in ops:
                continue
            tparts = template.strip("/").split("/")
            if len(tparts) != len(parts):
                continue
            values: dict[str, str] = {}
            for t, p in zip(tparts, parts, strict=True):
                if t.startswith("{") and t.endswith("}"):
                    values[t[1:-1]] = p
                elif t != p:
                    break
            else:
                return template, values
        return None

    def parameter_errors(
        self, method: str, template: str, path_values: dict[str, str], url: httpx.URL
    ) -> list[str]:
        """Problems with the path and query parameters of a request, by the operation's
        ``parameters`` (query values read as their schema's type; unknown names refused)."""
        op = self.operation(method, template) or {}
        problems: list[str] = []
        declared = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
        for name in sorted(set(url.params.keys()) - set(declared)):
            problems.append(f"query {name}: not a parameter of {method} {template}")
        for param in op.get("parameters", []):
            where, name, schema = param.get("in"), param["name"], param.get("schema", {})
            if where == "path":
                value: Any = path_values.get(name)
            elif where == "query":
                raw = url.params.get_list(name)
                if not raw:
                    value = None
                elif schema.get("type") == "array":
                    value = [_typed(v, schema.get("items", {})) for v in raw]
                else:
                    value = _typed(raw[-1], schema)
            else:
                continue
            if value is None:
                if param.get("required"):
                    problems.append(f"{where} {name}: required")
                continue
            validator = jsonschema.Draft202012Validator(schema)
            problems += [f"{where} {name}: {e.message}" for e in validator.iter_errors(value)]
        return problems

    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        pointer = (
            f"/paths/{_escape(path)}/{method.lower()}/responses/{status}"
            "/content/application~1json/schema"
        )
        return [_message(e) for e in self._validator(pointer).iter_errors(body)]


def _typed(text: str, schema: dict[str, Any]) -> Any:
    """A query string value read as its schema's type (``"10"`` for an integer is 10)."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def _escape(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def _message(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(body)"
    return f"{where}: {error.message}"


@dataclass
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float
    key: str | None
    #: The status answered, or the name of the exception raised.
    outcome: int | str = 0


@dataclass
class _Limiter:
    limit: int
    per: float
    window: Window
    fixed: dict[tuple[str, int], int] = field(default_factory=dict)
    sliding: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, key: str, now: float) -> tuple[bool, int]:
        """Whether a request of ``key`` at ``now`` fits, and how many remain in its window."""
        if self.window == "fixed":
            bucket = (key, int(now // self.per))
            used = self.fixed.get(bucket, 0)
            if used >= self.limit:
                return False, 0
            self.fixed[bucket] = used + 1
            return True, self.limit - used - 1
        times = self.sliding.setdefault(key, deque())
        while times and times[0] <= now - self.per:
            times.popleft()
        if len(times) >= self.limit:
            return False, 0
        times.append(now)
        return True, self.limit - len(times)


class FakeProvider:
    """Shared machinery of the fakes; subclasses implement ``authenticate`` and ``route``."""

    #: File name of the vendor spec in ``vendor_dir()``.
    spec_file = ""

    def __init__(
        self,
        keys: Iterable[str],
        *,
        window: Window = "fixed",
        limit: int = 10,
        per: float = 1.0,
        clock: Callable[[], float] = time.time,
        hang_seconds: float = 5.0,
    ) -> None:
        self.keys = frozenset(keys)
        self.clock = clock
        self.validator = SpecValidator(self.spec_file)
        self.received: list[Received] = []
        self.outcomes: Counter[int | str] = Counter()
        #: Over loopback, how long a "timeout" keeps the client waiting.
        self.hang_seconds = hang_seconds
        self._limiter = _Limiter(limit, per, window)
        self._faults: deque[Any] = deque()
        #: ``(until, fault)`` while an ``outage`` is scripted.
        self._down: tuple[float, Any] | None = None
        self._lock = threading.Lock()
        #: Send the vendor's pacing headers (Quo's ``ratelimit``, Loops' ``x-ratelimit-reset``)
        #: with every answer; off by default, so timing tests written before them keep their
        #: exact figures.
        self.pacing_headers = False
        #: Seconds until the current window of the key last seen resets (fixed windows).
        self.reset_in = 0.0

    def set_rate_limit(self, limit: int) -> None:
        """Accept up to ``limit`` requests per window from now on (a test that counts requests
        and runs the runner faster than the provider's real pace)."""
        with self._lock:
            self._limiter.limit = limit
            self._limit = limit

    # -- what tests look at -------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self.received)

    @property
    def rejected(self) -> int:
        """How many requests were answered 429 by the rate limit (not by a script)."""
        return self.outcomes["rate-limited"]

    def script(self, *faults: Any) -> None:
        """Answer the next requests with these, in order: a status (with the vendor's error
        body), an ``httpx.Response``, an exception (class or instance), or
        ``TIMEOUT_AFTER_RECEIPT``."""
        with self._lock:
            self._faults.extend(faults)

    def outage(self, until: float, fault: Any = httpx.ConnectError) -> None:
        """Be down until ``clock()`` reaches ``until``: every request meets ``fault`` (as in
        ``script``: a connect error never arrives; a status is answered with the vendor's error
        body). On a ``VirtualClock`` a 10-minute outage takes no real time."""
        with self._lock:
            self._down = (until, fault)

    def max_in_window(self, per: float = 1.0) -> int:
        """The most requests accepted in any sliding window of ``per`` seconds."""
        times = sorted(r.at for r in self.received if r.outcome not in (429, 401))
        best, start = 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - per:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- the transport seam -------------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        """``httpx.MockTransport`` handler."""
        with self._lock:
            down = self._down is not None and self.clock() < self._down[0]
            if down and self._down is not None:
                fault = self._down[1]
                if _is_exception(fault) and isinstance(_instance(fault, request), _NOT_ARRIVED):
                    raise _instance(fault, request)
                # a service that is down answers before looking at the key or the rate
                rec = Received(
                    request.method,
                    request.url.path,
                    {k.lower(): v for k, v in request.headers.items()},
                    _json_or_text(request.content),
                    self.clock(),
                    None,
                    int(fault),
                )
                self.received.append(rec)
                self.outcomes[rec.outcome] += 1
                return self.error(int(fault), rec)
            fault = self._faults[0] if self._faults else None
            if _is_exception(fault) and isinstance(_instance(fault, request), _NOT_ARRIVED):
                self._faults.popleft()
                raise _instance(fault, request)
            now = self.clock()
            body = _json_or_text(request.content)
            rec = Received(
                request.method,
                request.url.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
                now,
                None,
            )
            self.received.append(rec)
            response, error = self._answer(request, rec)
            rec.outcome = type(error).__name__ if error else response.status_code
            self.outcomes[rec.outcome] += 1
        if error is not None:
            raise error
        return response

    def _answer(
        self, request: httpx.Request, rec: Received
    ) -> tuple[httpx.Response, BaseException | None]:
        key, problem = self.authenticate(request, rec)
        rec.key = key
        if problem is not None:
            return problem, None
        assert key is not None
        admitted, remaining = self._limiter.admit(key, rec.at)
        per = self._limiter.per
        # rounded up to the millisecond: a client waiting that long is in the next window
        self.reset_in = math.ceil((per - (rec.at % per)) * 1000 + 1e-6) / 1000
        if not admitted:
            self.outcomes["rate-limited"] += 1
            return self.rate_limited(), None
        if self._faults:
            fault = self._faults.popleft()
            if fault == TIMEOUT_AFTER_RECEIPT:
                self.route(request, rec)  # processed; only the answer is lost
                return httpx.Response(599), httpx.ReadTimeout("fake: answer lost", request=request)
            if _is_exception(fault):
                return httpx.Response(599), _instance(fault, request)
            if isinstance(fault, httpx.Response):
                return fault, None
            return self.error(int(fault), rec), None
        response = self.route(request, rec)
        response.headers.update(self.rate_headers(remaining))
        return response, None

    # -- for subclasses -----------------------------------------------------------------------

    def authenticate(
        self, request: httpx.Request, rec: Received
    ) -> tuple[str | None, httpx.Response | None]:
        """``(key, None)`` when authorized, else ``(None, error response)``."""
        raise NotImplementedError

    def route(self, request: httpx.Request, rec: Received) -> httpx.Response:
        raise NotImplementedError

    def error(self, status: int, rec: Received) -> httpx.Response:
        """The vendor's error answer for ``status``."""
        raise NotImplementedError

    def rate_limited(self) -> httpx.Response:
        return httpx.Response(429, json={"message": "API rate limit exceeded"})

    def rate_headers(self, remaining: int) -> dict[str, str]:
        return {}


def _is_exception(fault: Any) -> bool:
    return isinstance(fault, BaseException) or (
        isinstance(fault, type) and issubclass(fault, BaseException)
    )


def _instance(fault: Any, request: httpx.Request) -> BaseException:
    if isinstance(fault, BaseException):
        return fault
    if issubclass(fault, httpx.RequestError):
        return fault(f"fake: {fault.__name__}", request=request)
    return fault()  # type: ignore[no-any-return]


def _json_or_text(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


# -- real loopback ------------------------------------------------------------------------------


def _asgi_app(fake: FakeProvider) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        content = await request.body()
        forwarded = httpx.Request(
            request.method, str(request.url), headers=request.headers.raw, content=content
        )
        try:
            answer = fake.handler(forwarded)
        except httpx.RequestError:
            await asyncio.sleep(fake.hang_seconds)  # the client times out first
            return Response(status_code=504)
        headers = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        }
        return Response(answer.content, status_code=answer.status_code, headers=headers)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])


class LoopbackServer:
    """Runs a fake under uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, fake: FakeProvider) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            _asgi_app(fake),
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("loopback server did not start")
            time.sleep(0.01)
        return self.base_url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.asynccontextmanager
async def serve_on_loopback(fake: FakeProvider) -> AsyncIterator[str]:
    """Serve ``fake`` over real HTTP on 127.0.0.1; yields the base URL."""
    server = LoopbackServer(fake)
    base_url = await asyncio.to_thread(server.start)
    try:
        yield base_url
    finally:
        await asyncio.to_thread(server.stop)
