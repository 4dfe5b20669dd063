"""``Connections``: one shared client, paced per API key, retrying what is safe to retry."""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from automations.actions import ErrorExplainer, explainer_for
from automations.breaker import Breaker, refuses_key
from automations.connections.http11 import Http11Transport
from automations.connections.observer import NO_ANSWER, NOT_REACHED, SendObserver
from automations.connections.outcome import Call
from automations.connections.pacing import Pacing
from automations.connections.signals import hold_for
from automations.connections.wire import (
    NoCookies,
    build_request,
    masked_url,
    refuse_to_send,
    report_sending,
)
from automations.endpoints import ConnectionSettings, Endpoint, mask_headers
from automations.errors import ConfigError, ConnectionPausedError, ProviderError
from automations.outbound import Connection, OutboundRequest, SendResult
from automations.ports import Pacer
from automations.ratelimit import Slot
from automations.retry import RetryPolicy

__all__ = ["DEFAULT_TIMEOUT", "Connections"]

#: How many ``describe`` answers a ``Connections`` remembers.
_DESCRIBED_MAX = 256
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

# Failures before any byte of the request left: always safe to try again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
# Failures that no retry can fix: the request itself cannot be sent.
_UNSENDABLE = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
_RETRYABLE_STATUS = frozenset({408, 429})


class Connections:
    """Sends ``OutboundRequest``s through one shared client, paced per API key.

    Pass ``client`` to share an existing ``httpx.AsyncClient`` (it is not closed here), or
    ``transport`` (``httpx.MockTransport`` in tests) for a client created on first use and closed
    by ``aclose``. ``clock``, ``sleep``, ``now`` and ``rng`` drive pacing and backoff; tests
    inject fakes. ``observer`` hears of every answer, retry and wait for a slot (``/metrics``).
    One ``Connections`` belongs to one event loop.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        observer: SendObserver | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        if client is not None and transport is not None:
            raise ValueError("pass either client or transport, not both")
        self.settings = settings
        self._client = client
        self._owns_client = client is None
        #: The transport of the client this object made for itself, when it is ours: requests
        #: go to it directly (``Http11Transport.send``), past the client's layers of auth,
        #: redirects, hooks and cookies, which such a client never uses.
        self._direct: Http11Transport | None = None
        self._transport = transport
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._now = now
        self._rng = rng or random.Random()
        #: Hears of answers, retries and waits for a slot (a no-op unless set).
        self.observer = observer or SendObserver()
        #: Makes each key's pacer: local to this process, or shared by every node through
        #: PostgreSQL (``pacing.py``); closed with these connections.
        self.pacing = pacing or Pacing()
        self._limiters: dict[str, Pacer] = {}
        self._breakers: dict[str, Breaker] = {}
        #: Called with a breaker whenever it pauses or resumes (the dispatcher listens).
        self.breaker_listeners: list[Callable[[Breaker], None]] = []
        self._endpoints: dict[Connection, Endpoint | None] = {}
        #: Per connection: the client's default headers with the connection's over them.
        self._base_headers: dict[Connection, httpx.Headers] = {}
        self._described: dict[
            tuple[Connection, str, tuple[tuple[str, str], ...], str | None],
            tuple[str, tuple[tuple[str, str], ...]],
        ] = {}

    @classmethod
    def for_preview(cls, env: Mapping[str, str]) -> Connections:
        """Connections that only ``describe`` requests (previews, ``automations test``).

        Tolerates a malformed or incomplete environment; ``send`` refuses to send.
        """
        try:
            settings = ConnectionSettings.from_env(env)
        except ConfigError:
            settings = ConnectionSettings()
        return cls(settings, transport=httpx.MockTransport(refuse_to_send))

    async def __aenter__(self) -> Connections:
        # Build the client (and its TLS context, which takes a while to load) now, rather than
        # on the way of the first request.
        self._http()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it, and the pacing's gate thread."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
            self._direct = None
        self.pacing.close()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            transport = self._transport
            if transport is None and not _proxied():
                # httpx's own transport costs ten times as much CPU per request (http11.py)
                transport = self._direct = Http11Transport()
            client = httpx.AsyncClient(
                transport=transport, timeout=self._timeout, follow_redirects=False
            )
            # Provider APIs authenticate by header and set no cookies we want to keep; httpx
            # would still run every response through http.cookiejar (a third of its per-request
            # time). A client we own gets a jar that ignores cookies.
            if isinstance(getattr(client, "_cookies", None), httpx.Cookies):
                client._cookies = NoCookies()
            self._client = client
        return self._client

    def limiter_for(self, connection: Connection) -> Pacer | None:
        """The rate limiter requests of ``connection`` wait on (``None`` for ``HTTP``).

        Raises ``ConfigError`` when the connection's API key is not configured.
        """
        endpoint = self._endpoint(connection)
        return None if endpoint is None else self._limiter(endpoint)

    def _endpoint(self, connection: Connection) -> Endpoint | None:
        # The settings are frozen, so each connection's endpoint is built once (building one
        # hashes the key); a missing key raises ConfigError every time, and is not remembered.
        try:
            return self._endpoints[connection]
        except KeyError:
            endpoint = self._endpoints[connection] = self.settings.endpoint(connection)
            return endpoint

    def _limiter(self, endpoint: Endpoint) -> Pacer:
        limiter = self._limiters.get(endpoint.limiter_key)
        if limiter is None:
            limiter = self.pacing.pacer(
                endpoint.limiter_key,
                endpoint.rate,
                guard=self.settings.rate_guard,
                clock=self._clock,
                sleep=self._sleep,
                name=endpoint.name,
            )
            self._limiters[endpoint.limiter_key] = limiter
        return limiter

    def describe(self, req: OutboundRequest) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The URL and headers ``req`` would be sent with, secrets masked. Never raises: a
        missing key shows as ``Authorization: <unset: set QUO_API_KEY>``."""
        # Every run describes its requests for the audit, and most are alike (same endpoint and
        # path, no idempotency key): remember the answers, a bounded number of them.
        key = (req.connection, req.path, req.headers, req.idempotency_key)
        described = self._described.get(key)
        if described is None:
            if len(self._described) >= _DESCRIBED_MAX:
                self._described.clear()
            described = self._described[key] = self._describe(req)
        return described

    def _describe(self, req: OutboundRequest) -> tuple[str, tuple[tuple[str, str], ...]]:
        try:
            endpoint = self._endpoint(req.connection)
        except ConfigError as exc:
            base = self.settings.base_url_for(req.connection) or ""
            unset = ("Authorization", f"<unset: set {exc.variable}>")
            headers = (unset, *mask_headers(self._headers(req, None)))
            return masked_url(base + req.path), headers
        url = endpoint.url(req.path) if endpoint else req.path
        return masked_url(url), mask_headers(self._headers(req, endpoint))

    def _headers(self, req: OutboundRequest, endpoint: Endpoint | None) -> list[tuple[str, str]]:
        headers = [*(endpoint.headers if endpoint else self.settings.plain_headers), *req.headers]
        if req.idempotency_key:
            headers.append(("Idempotency-Key", req.idempotency_key))
        return headers

    def breaker_for(self, connection: Connection) -> Breaker | None:
        """The circuit breaker of ``connection``'s API key (``None`` for ``HTTP`` or an unset
        key). Created on first use, shared by every request with that key."""
        if connection is Connection.HTTP:
            return None
        try:
            endpoint = self._endpoint(connection)
        except ConfigError:
            return None
        if endpoint is None:
            return None
        breaker = self._breakers.get(endpoint.limiter_key)
        if breaker is None:
            breaker = self._breakers[endpoint.limiter_key] = Breaker(
                connection,
                probe_every_s=self.settings.probe_every_s,
                clock=self._clock,
                on_change=self._breaker_changed,
            )
        return breaker

    def breakers(self) -> list[Breaker]:
        """Every breaker created so far (one per API key used)."""
        return list(self._breakers.values())

    def _breaker_changed(self, breaker: Breaker) -> None:
        for listener in list(self.breaker_listeners):
            listener(breaker)

    async def send(
        self,
        req: OutboundRequest,
        policy: RetryPolicy,
        *,
        explain: ErrorExplainer | None = None,
        on_sending: Callable[[], Awaitable[None] | None] | None = None,
        on_unsent: Callable[[], Awaitable[None] | None] | None = None,
    ) -> SendResult:
        """Send ``req`` (see ``_send``) through its key's circuit breaker (``breaker.py``):
        while the connection is paused nothing leaves (``ConnectionPausedError``, raised once
        the request's rate-limiter slot came, so a pause during the wait for it counts), and
        each outcome tells the breaker whether the key works."""
        breaker = self.breaker_for(req.connection)
        if breaker is None:
            return await self._send(
                req, policy, explain=explain, on_sending=on_sending, on_unsent=on_unsent
            )
        probe = False
        admitted_once = False

        async def admitted() -> None:
            nonlocal probe, admitted_once
            if not admitted_once:  # the breaker admits a send once, not each of its attempts
                admitted_once = True
                probe = breaker.admit()
            if on_sending is not None:
                result = on_sending()
                if result is not None:
                    await result

        try:
            sent = await self._send(
                req, policy, explain=explain, on_sending=admitted, on_unsent=on_unsent
            )
        except ConnectionPausedError:
            raise
        except ProviderError as exc:
            if refuses_key(req.connection, exc.status):
                breaker.refused(exc.status or 0, _refusal(exc), probe)
            raise
        else:
            breaker.succeeded(probe)
            return sent
        finally:
            breaker.probe_ended(probe)

    async def _send(
        self,
        req: OutboundRequest,
        policy: RetryPolicy,
        *,
        explain: ErrorExplainer | None = None,
        on_sending: Callable[[], Awaitable[None] | None] | None = None,
        on_unsent: Callable[[], Awaitable[None] | None] | None = None,
    ) -> SendResult:
        """Send ``req``, retrying what is safe to retry, and return what came back.

        Raises ``ConfigError`` (the API key variable is unset), ``AmbiguousSendError`` (a request
        that is not ``resend_safe`` may have been delivered) or ``ProviderError`` (refused, or
        still failing when ``policy`` ran out; ``retryable`` tells which). ``explain`` turns an
        error answer into ``(vendor_message, vendor_code, advice)``; by default the provider's.
        ``on_sending`` is called after the rate limiter let the request go and just before it
        leaves: the executor records "sending" there, so a crash while the request waits for
        its slot leaves a step that was never sent (and is sent on resume), not an unknown one.
        When given, ``on_unsent`` is called after an attempt that provably never reached the
        provider (no connection, a 429), before the wait for the next one, and ``on_sending``
        again before that next attempt: a crash during a long wait (an outage) then leaves a
        step that was never sent, not an unknown one.
        """
        endpoint = self._endpoint(req.connection)
        url = endpoint.url(req.path) if endpoint else req.path
        limiter = self._limiter(endpoint) if endpoint else None
        masked_url, masked_headers = self.describe(req)
        call = Call(
            req,
            endpoint,
            masked_url,
            masked_headers,
            explain or explainer_for(req.connection, req.path, gateway=_via_gateway(endpoint)),
        )
        client = self._http()
        seen = self.observer
        name = req.connection.value
        slot = await self._acquire(limiter, name) if limiter else None
        # Durations and the max_total budget start at the first slot, not in the queue for it.
        started = self._clock()
        previous_delay: float | None = None
        attempt = 0
        unmarked = True  # no "sending" mark is standing for this request
        while True:
            attempt += 1
            if attempt > 1 and limiter is not None:
                slot = await self._acquire(limiter, name)
            extensions = {"trace": report_sending(slot)} if slot else {}
            try:
                # the bytes are built before "sending" is recorded: a body JSON cannot carry
                # fails here, never sent, not "unknown"
                request = self._request(client, req, endpoint, url, extensions)
            except ValueError as exc:  # NaN / Infinity (allow_nan=False), a lone surrogate
                raise call.failure(
                    f"could not be sent: {_unencodable(exc)}", attempt, None
                ) from None
            if unmarked and on_sending is not None:
                pending = on_sending()
                if pending is not None:
                    await pending
            unmarked = False
            last: httpx.Response | None = None
            retry_after: float | None = None
            unsent = False  # whether this attempt provably never reached the provider
            try:
                direct = self._direct
                if direct is not None:
                    response = await direct.send(request)
                else:
                    response = await client.send(request)
            except _NOT_SENT as exc:
                reason = f"could not be reached ({type(exc).__name__})"
                unsent = True
                seen.unanswered(name, NOT_REACHED)
            except _UNSENDABLE as exc:
                raise call.failure(f"could not be sent ({exc})", attempt, None) from None
            except httpx.RequestError as exc:  # it left, but no complete answer came back
                seen.unanswered(name, NO_ANSWER)
                if not req.resend_safe:
                    raise call.ambiguous(exc, attempt, self._ms(started)) from None
                reason = f"gave no answer ({type(exc).__name__})"
            else:
                status = response.status_code
                seen.answered(name, status)
                hold = hold_for(response, now=self._now(), unix_now=self._now().timestamp())
                if hold is not None and limiter is not None:
                    # the provider's own pacing signal holds the whole connection (every request
                    # of this key), not just this request's retry
                    limiter.hold(hold)
                if 200 <= status < 300 or status in req.also_success:
                    return call.result(response, attempt, self._ms(started))
                if status not in _RETRYABLE_STATUS and status < 500:
                    raise call.failure(f"refused with {status}", attempt, response)
                if status != 429 and not req.resend_safe:
                    # a server error or timeout after the request arrived proves nothing about
                    # whether it was acted on; only a 429 says it was not
                    raise call.ambiguous(response, attempt, self._ms(started))
                reason, last = f"answered {status}", response
                unsent = status == 429
                retry_after = hold
            if attempt >= policy.max_attempts:
                raise call.failure(reason, attempt, last, retryable=True)
            delay = policy.backoff(attempt, previous_delay, retry_after=retry_after, rng=self._rng)
            if self._clock() - started + delay > policy.max_total:
                reason += f"; the next try would pass the {policy.max_total:g} s limit"
                raise call.failure(reason, attempt, last, retryable=True)
            if unsent and on_unsent is not None:
                pending = on_unsent()
                if pending is not None:
                    await pending
                unmarked = True
            seen.retrying(name, _retry_reason(last, unsent))
            await self._sleep(delay)
            previous_delay = delay

    async def _acquire(self, limiter: Pacer, connection: str) -> Slot:
        """The limiter's next slot, the wait for it told to the observer."""
        seen = self.observer
        started = self._clock()
        seen.waiting(connection, 1)
        try:
            slot = await limiter.acquire()
        finally:
            seen.waiting(connection, -1)
        seen.waited(connection, self._clock() - started)
        return slot

    def _request(
        self,
        client: httpx.AsyncClient,
        req: OutboundRequest,
        endpoint: Endpoint | None,
        url: str,
        extensions: dict[str, Any],
    ) -> httpx.Request:
        """The ``httpx.Request`` for one attempt: what ``client.request(..., json=...)`` builds,
        without its cost (it normalizes every header three times over, and this runs for every
        request). Headers: the client's defaults, then the connection's, then the request's own
        and its ``Idempotency-Key``, each replacing one of the same name. The body is compact
        UTF-8 JSON, as httpx encodes it. A shared client's default headers and timeout apply
        (and its auth and event hooks, in ``client.send``); its cookies and params do not:
        provider APIs use neither."""
        merged = self._base_headers.get(req.connection)
        if merged is None:
            merged = httpx.Headers(client.headers)
            merged.update(endpoint.headers if endpoint else self.settings.plain_headers)
            self._base_headers[req.connection] = merged
        if req.headers or req.idempotency_key:
            merged = httpx.Headers(merged)
            merged.update(req.headers)
            if req.idempotency_key:
                merged["Idempotency-Key"] = req.idempotency_key
        return build_request(client, req.method, url, req.json, merged, req.headers, extensions)

    def _ms(self, started: float) -> float:
        return round((self._clock() - started) * 1000.0, 3)


def _proxied() -> bool:
    """Whether the environment names a proxy (httpx's own transport honours it)."""
    return any(name in ("http", "https", "all") for name in urllib.request.getproxies())


def _retry_reason(answer: httpx.Response | None, unsent: bool) -> str:
    """Why an attempt is tried again, as a fixed word: the status, or that none came."""
    if answer is not None:
        return str(answer.status_code)
    return NOT_REACHED if unsent else NO_ANSWER


def _refusal(exc: ProviderError) -> str:
    """Why a breaker paused, in words: the status and the advice (which variable to check)."""
    what = "no prepaid credits" if exc.status == 402 else "authentication failed"
    advice = f"; {exc.advice}" if exc.advice else ""
    return f"answered {exc.status} ({what}){advice}"


def _via_gateway(endpoint: Endpoint | None) -> bool:
    return endpoint is not None and endpoint.variable == "MATON_API_KEY"


def _unencodable(exc: ValueError) -> str:
    """Why the request's bytes could not be built, said without the value itself."""
    if isinstance(exc, UnicodeEncodeError):
        return "it holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape), which is not text"
    if "JSON compliant" in str(exc):
        return "its body holds NaN or Infinity, which JSON cannot carry"
    return f"it cannot be encoded ({type(exc).__name__})"
