"""``Http11Transport``: HTTP/1.1 over asyncio, the transport under a client ``Connections`` owns.

httpx's default transport (httpcore on anyio) spends about 0.5 ms of CPU on each request here
(its pool polls every connection's socket, anyio wraps every read and write); this one, about a
tenth of that. It does what ``Connections`` needs, the way httpcore does it:

- HTTP/1.1 with keep-alive, ``http`` and ``https`` (httpx's default TLS context, ALPN
  ``http/1.1``); the pool limits httpx defaults to (100 connections, 20 kept idle for 5 s);
- the timeouts of ``request.extensions["timeout"]``: ``connect`` (TCP and TLS), ``read`` (the
  longest wait for the next bytes of the answer), ``write`` (the wait for a full send buffer to
  drain), ``pool`` (the wait for a free connection);
- httpx's exceptions, as httpcore raises them: ``ConnectError`` / ``ConnectTimeout`` (nothing
  was sent), ``PoolTimeout``, ``LocalProtocolError`` (a header or method that cannot be sent:
  checked before any byte leaves), ``ReadTimeout``, ``ReadError`` / ``RemoteProtocolError``
  (the request left; no complete answer came back), ``UnsupportedProtocol``;
- the ``trace`` extension's ``http11.send_request_body.complete`` event (``wire.report_sending``).

A request is written in one send (head and body together); the whole answer is read before the
``httpx.Response`` is returned (``Connections`` reads every answer whole). ``Connections`` calls
``send`` directly, past its own client's layers (auth, redirects, hooks, cookies: unused there),
which cost as much again as this transport. Informational (1xx)
answers are skipped. A connection the server closed while idle is dropped when the event loop
learns of it, never reused. Proxies are not supported: ``Connections`` keeps httpx's own
transport when the environment names one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from typing import Any

import httptools
import httpx

from automations.connections.wire import request_bytes

__all__ = ["Http11Transport"]

_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_NO_TIMEOUT: dict[str, float | None] = {}
#: The most bytes an answer's head may take (httpcore's limit): a server sending headers
#: without end fails the request instead of filling memory.
MAX_HEAD_BYTES = 100 * 1024


class Http11Transport(httpx.AsyncBaseTransport):
    """A pool of HTTP/1.1 connections per origin (see the module's docstring)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        keepalive_expiry: float = 5.0,
    ) -> None:
        # built now (loading the CA bundle takes a while), not on the way of the first request
        self._ssl = ssl_context or _default_tls()
        self._max = max_connections
        self._max_idle = max_keepalive_connections
        self._expiry = keepalive_expiry
        self._idle: dict[tuple[bytes, bytes, int], deque[_Connection]] = {}
        self._idle_count = 0
        #: Open connections, idle or in use.
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The answer to ``request``, read whole (its content decoded): what ``client.send``
        gives, for a client that adds nothing to a request (no auth, hooks, redirects or
        cookies), at a fraction of the cost."""
        response = await self.handle_async_request(request)
        response.request = request
        response.read()
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        host = url.raw_host
        if scheme not in _DEFAULT_PORTS or not host:
            raise httpx.UnsupportedProtocol(
                "Request URL is missing an 'http://' or 'https://' protocol."
                if scheme not in _DEFAULT_PORTS
                else "Request URL has no host."
            )
        data = await request_bytes(request)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", _NO_TIMEOUT)
        origin = (scheme, host, url.port or _DEFAULT_PORTS[scheme])
        conn = await self._acquire(origin, timeouts)
        try:
            answer = await conn.exchange(request, data, timeouts)
        except BaseException:
            self._drop(conn)
            raise
        self._release(conn)
        status, headers, reason, body = answer
        return httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _acquire(
        self, origin: tuple[bytes, bytes, int], timeouts: dict[str, float | None]
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be stale
            self._idle_count -= 1
            conn.in_pool = False
            if conn.usable and loop.time() - conn.idle_since < self._expiry:
                return conn
            self._drop(conn)
        if self._open >= self._max and self._idle_count:
            self._drop_an_idle_connection()  # one to another origin makes room for this one
        if self._open >= self._max:
            await self._wait_for_room(timeouts.get("pool"))
            return await self._acquire(origin, timeouts)
        self._open += 1
        try:
            return await self._connect(loop, origin, timeouts.get("connect"))
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    def _drop_an_idle_connection(self) -> None:
        for idle in self._idle.values():
            if idle:
                conn = idle.popleft()  # the oldest
                self._idle_count -= 1
                conn.in_pool = False
                self._drop(conn)
                return

    async def _wait_for_room(self, timeout: float | None) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            raise httpx.PoolTimeout("no connection became free in time") from None
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        origin: tuple[bytes, bytes, int],
        timeout: float | None,
    ) -> _Connection:
        scheme, raw_host, port = origin
        host = raw_host.decode("ascii")
        tls = self._ssl if scheme == b"https" else None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin, loop),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        if not conn.usable or self._closed or self._idle_count >= self._max_idle:
            self._drop(conn)
            return
        conn.idle_since = asyncio.get_running_loop().time()
        conn.in_pool = True
        self._idle.setdefault(conn.origin, deque()).append(conn)
        self._idle_count += 1
        self._wake()

    def _drop(self, conn: _Connection) -> None:
        """Close ``conn`` and give its place back (once, however often it is dropped)."""
        conn.close()
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake()

    def lost(self, conn: _Connection) -> None:
        """``conn`` was closed by the other side or the network."""
        if conn.in_pool:
            conn.in_pool = False
            idle = self._idle.get(conn.origin)
            if idle is not None and conn in idle:
                idle.remove(conn)
                self._idle_count -= 1
            self._drop(conn)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                self._drop(idle.pop())
        self._idle_count = 0


def _default_tls() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``),
    offering HTTP/1.1 only, as httpcore does."""
    context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class _Connection(asyncio.Protocol):
    """One connection: writes a request, parses its answer (httptools), one at a time."""

    def __init__(
        self,
        pool: Http11Transport,
        origin: tuple[bytes, bytes, int],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.pool = pool
        self._loop = loop
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        #: Counts in the pool's open connections (until dropped).
        self.counted = True
        #: Sits in the pool's idle list.
        self.in_pool = False
        self.idle_since = 0.0
        self.usable = True
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._parser: Any = None
        self._head_only = False
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._seen_headers = False
        self._until_close = False
        self._complete = False
        #: Bytes received before the answer's head was complete.
        self._head_bytes = 0
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- one exchange ---------------------------------------------------------------------------

    async def exchange(
        self, request: httpx.Request, data: bytes, timeouts: dict[str, float | None]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bytes]:
        transport = self.transport
        if transport is None:  # closed since it was opened: nothing was sent
            raise httpx.ConnectError("the connection closed before the request was sent")
        loop = self._loop
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = request.method == "HEAD"
        self._headers, self._body = [], []
        self._seen_headers = self._until_close = self._complete = False
        self._head_bytes = 0
        waiter = self._waiter = loop.create_future()
        try:
            transport.write(data)
            if self._paused:
                await self._drain(loop, timeouts.get("write"))
            trace = request.extensions.get("trace")
            if trace is not None:
                await trace("http11.send_request_body.complete", {"request": request})
            read = timeouts.get("read")
            if read is not None and not waiter.done():
                self._last_read = loop.time()
                self._timer = loop.call_later(read, self._check_read, read)
            await waiter
        finally:
            self._waiter = None
            if not waiter.done():
                waiter.cancel()  # nothing waits for it any more (a write timeout, a cancel)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        body, self._body = b"".join(self._body), []  # an idle connection holds no answer
        return self._status, self._headers, self._reason, body

    async def _drain(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        self._drained = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._drained
        except TimeoutError:
            self.usable = False
            raise httpx.WriteTimeout("the request could not be sent in time") from None
        finally:
            self._drained = None

    def _check_read(self, read: float) -> None:
        self._timer = None
        loop = self._loop
        quiet = loop.time() - self._last_read
        if quiet < read:
            self._timer = loop.call_later(read - quiet, self._check_read, read)
            return
        self._fail(httpx.ReadTimeout("no answer came in time"))

    def _fail(self, exc: Exception) -> None:
        self.usable = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def _done(self) -> None:
        self._complete = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._complete:
            # nothing was asked (or more than the answer came): the stream cannot be trusted
            self._fail(httpx.RemoteProtocolError("the server sent data nothing asked for"))
            return
        if self._timer is not None:
            self._last_read = self._loop.time()
        if not self._seen_headers:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # httptools.HttpParserError, HttpParserUpgrade
            self._fail(httpx.RemoteProtocolError(f"the answer is not valid HTTP/1.1 ({exc})"))
            return
        if not self._seen_headers and self._head_bytes > MAX_HEAD_BYTES:
            self._fail(httpx.RemoteProtocolError("the answer's head is too long"))

    def eof_received(self) -> bool | None:
        return None  # close the transport (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self.transport = None
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._seen_headers and self._until_close:
                self._done()  # a body delimited by the end of the connection
            elif isinstance(exc, OSError):
                waiter.set_exception(httpx.ReadError(str(exc) or type(exc).__name__))
            elif self._seen_headers:
                waiter.set_exception(
                    httpx.RemoteProtocolError(
                        "peer closed connection without sending complete message body"
                    )
                )
            else:
                waiter.set_exception(
                    httpx.RemoteProtocolError("Server disconnected without sending a response.")
                )
        self.pool.lost(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def close(self) -> None:
        self.usable = False
        if self.transport is not None:
            self.transport.close()

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request: the rest is ignored, not reused
            self.usable = False
            return
        self._headers, self._body = [], []

    def on_status(self, reason: bytes) -> None:
        if not self._complete:
            self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._complete and not self._seen_headers:  # not a chunked body's trailers
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._complete:
            return
        status = self._parser.get_status_code()
        self._status = status
        if 100 <= status < 200 and status != 101:
            return  # informational: the answer follows
        self._seen_headers = True
        if not self._parser.should_keep_alive():
            self.usable = False
        if self._head_only or status == 101:
            # no body follows a HEAD's answer; the parser would wait for one: not reused
            self.usable = False
            self._done()
            return
        names = {name.lower() for name, _ in self._headers}
        if (
            b"content-length" not in names
            and b"transfer-encoding" not in names
            and status not in (204, 304)
        ):
            self._until_close = True
            self.usable = False

    def on_body(self, body: bytes) -> None:
        if not self._complete:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._seen_headers or self._complete:
            return  # the end of an informational answer
        self._done()
