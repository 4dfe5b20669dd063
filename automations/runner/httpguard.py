"""The HTTP server's own limits: what a client may hold of the runner before a request reaches it.

uvicorn (with httptools, for intake throughput) has no limit on the size of a request's head,
no timeout on a client that sends its head or body slowly, and no cap on open connections that
keeps the process inside its file-descriptor limit (``limit_concurrency`` answers 503 only once a
head is complete, and counts idle connections all the same). Unguarded, one 256 MiB header took
82 s of parsing and 319 MB, 3,000 slow connections were held for a minute, and 1,100 idle ones
under the common 1,024-descriptor limit took the service down. ``guarded_protocol`` returns
uvicorn's httptools protocol with these limits (``HttpLimits``):

- **head size**: the request line and headers together may take ``max_head_bytes`` (32 KiB);
  beyond that the answer is ``431 Request Header Fields Too Large`` and the connection closes,
  before the parser buffers more. Bytes are counted as they arrive, before parsing.
- **head timeout**: a connection must deliver a complete head within ``head_timeout_s`` (10 s)
  of opening (or of its previous request's first byte): else ``408`` and close.
- **body timeout**: the body must arrive within ``body_timeout_s`` (30 s) of the head: else the
  connection closes (the intake sees a disconnect and records nothing).
- **connections**: at most ``max_connections`` (512) open at once. A new connection beyond that
  closes the oldest connection still waiting for its head, or idle between requests (``408``:
  it was going to time out, and a genuine sender delivers its head in milliseconds); if every
  connection is busy with a request, the new one is answered ``503`` with ``Retry-After: 1`` and
  closed, so descriptors stay bounded. ``fit_to_descriptors`` lowers the cap if the process's
  descriptor limit (``ulimit -n``) would not hold it.

A connection answered ``431`` or ``503`` while its client may still be sending is not closed
outright (the client would get a reset and lose the answer): it stops writing and drops what
still arrives for ``LINGER_S`` (1 s), at most ``MAX_LINGERING`` (64) connections at a time.

None of these is reached by a genuine delivery: providers send a few hundred bytes of headers and
the whole request at once.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from automations.throttled_log import ThrottledLog

__all__ = ["DEFAULT_LIMITS", "HttpLimits", "fit_to_descriptors", "guarded_protocol"]

log = logging.getLogger("automations.runner")
#: 431s are caused from outside: logged, but never faster than a bounded rate.
refusals = ThrottledLog(log)

#: How long a refused connection's incoming bytes are read and dropped after the answer, so the
#: client reads the answer instead of a reset.
LINGER_S = 1.0

#: The most connections lingering at once (beyond, a refused connection is closed at once).
MAX_LINGERING = 64

#: Descriptors kept free of client connections: the database and its WAL, outbound
#: connections to the providers, watched files, logs.
RESERVED_DESCRIPTORS = 128 + MAX_LINGERING


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_head_bytes: int = 32 * 1024
    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 512


DEFAULT_LIMITS = HttpLimits()


def _response(status: bytes, text: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: "
        + str(len(text)).encode()
        + b"\r\nconnection: close\r\n"
        + extra
        + b"\r\n"
        + text
    )


_TOO_LARGE = b"431 Request Header Fields Too Large"
_TIMEOUT = _response(b"408 Request Timeout", b'{"error": "the request was not sent in time"}')
_BUSY = _response(
    b"503 Service Unavailable",
    b'{"error": "too many connections; retry later"}',
    b"retry-after: 1\r\n",
)


class _OneWrite:
    """A connection's transport that sends each response's head together with the first bytes
    after it: uvicorn writes the head and the body apart, two sends and two wake-ups of the
    client where one does. An informational head (``100 Continue``) goes at once; whatever is
    held goes before a close, and when the response is complete (``flush``)."""

    __slots__ = ("_head", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + bytes(data))
        elif isinstance(data, bytes) and data.startswith(b"HTTP/1.1 ") and data[9:10] != b"1":
            self._head = data
        else:
            self._transport.write(data)

    def flush(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _GuardedHttpTools(HttpToolsProtocol):
    """``HttpToolsProtocol`` with the limits of ``HttpLimits`` (set per server by
    ``guarded_protocol``)."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    #: Open connections of this server, and those still waiting for their head (oldest first:
    #: dicts keep insertion order).
    open: ClassVar[set[_GuardedHttpTools]]
    waiting: ClassVar[dict[_GuardedHttpTools, None]]
    #: Connections answered and closing, still reading what their client sends (see ``_close``).
    lingering: ClassVar[int]
    #: Told of each refusal: ``header_size`` (431), ``timeout`` (408), ``busy`` (503).
    on_refusal: ClassVar[Callable[[str], None]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._timer: asyncio.TimerHandle | None = None
        self._discarding = False
        self._lingering = False

    # -- connections ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cls = type(self)
        if len(cls.open) >= cls.limits.max_connections:
            oldest = next(iter(cls.waiting), None)
            if oldest is None:
                cls.on_refusal("busy")
                self._discarding = True  # never parsed: only answered and closed
                transport.write(_BUSY)
                self._close(transport, linger=True)
                return
            cls.on_refusal("timeout")
            oldest._give_up(_TIMEOUT)
        cls.open.add(self)
        super().connection_made(_OneWrite(transport))  # type: ignore[arg-type]
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        cls = type(self)
        cls.open.discard(self)
        cls.waiting.pop(self, None)
        if self._lingering:
            self._lingering = False
            cls.lingering -= 1
        self._cancel_timer()
        if self.transport is not None:  # a refused connection never got this far
            super().connection_lost(exc)

    # -- reading --------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        limit = self.limits.max_head_bytes
        if self._in_head and self._head_bytes + len(data) > limit:
            room = limit - self._head_bytes
            if room > 0:
                self._head_bytes = limit
                super().data_received(data[:room])  # the head may end inside these bytes
            if self._in_head:
                type(self).on_refusal("header_size")
                refusals.warning(
                    "oversized request heads",
                    "refused a request whose head is over %d bytes (431)",
                    limit,
                )
                self._give_up(
                    _response(
                        _TOO_LARGE,
                        b'{"error": "request line and headers over %d bytes"}' % limit,
                    ),
                    linger=True,
                )
                return
            data = data[room:]
            if not data or self.transport.is_closing():
                return
        elif self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._in_head = True
            self._head_bytes = 0
            self._await_head()

    def on_headers_complete(self) -> None:
        self._in_head = False
        type(self).waiting.pop(self, None)
        self._start_timer(self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            # idle until the next request (uvicorn's keep-alive timeout): first to make room
            type(self).waiting[self] = None

    # -- timers ---------------------------------------------------------------------------------

    def _await_head(self) -> None:
        type(self).waiting[self] = None
        self._start_timer(self.limits.head_timeout_s)

    def _start_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        if self._in_head or cycle is None or not cycle.response_started:
            type(self).on_refusal("timeout")
            self._give_up(_TIMEOUT)
        else:
            self.transport.close()

    def _give_up(self, response: bytes, *, linger: bool = False) -> None:
        """Answer ``response`` (when nothing was answered yet) and close the connection."""
        type(self).waiting.pop(self, None)
        self._cancel_timer()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            transport.write(response)
            if cycle is not None:
                cycle.disconnected = True  # the app's own answer, if any, is dropped
                cycle.message_event.set()
        self._discarding = True
        self._close(transport, linger=linger)

    def _close(self, transport: asyncio.Transport, *, linger: bool) -> None:
        """Close ``transport``. With ``linger``, a client still sending (a huge header, a
        request sent before the 503) would get a reset and likely lose the answer: stop
        writing, drop what still comes for ``LINGER_S``, then close; at most
        ``MAX_LINGERING`` connections at once, so descriptors stay bounded."""
        cls = type(self)
        if not linger or cls.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        cls.lingering += 1
        self._lingering = True
        transport.write_eof()
        self.loop.call_later(LINGER_S, transport.close)


def guarded_protocol(
    limits: HttpLimits, on_refusal: Callable[[str], None] | None = None
) -> type[HttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing ``limits`` (one per server:
    it counts that server's connections); ``on_refusal`` is told why each refusal happened."""
    return type(
        "GuardedHttpTools",
        (_GuardedHttpTools,),
        {
            "limits": limits,
            "open": set(),
            "waiting": {},
            "lingering": 0,
            "on_refusal": staticmethod(on_refusal or _ignore),
        },
    )


def _ignore(reason: str) -> None:
    return None


def fit_to_descriptors(limits: HttpLimits) -> HttpLimits:
    """``limits`` with ``max_connections`` lowered, if need be, to what the process's
    descriptor limit leaves after ``RESERVED_DESCRIPTORS`` (raising the soft limit to the hard
    one first, as far as allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.max_connections + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return limits
    fitted = max(1, soft - RESERVED_DESCRIPTORS)
    log.warning(
        "the descriptor limit (ulimit -n %d) leaves room for %d connections, not %d",
        soft,
        fitted,
        limits.max_connections,
    )
    return HttpLimits(limits.max_head_bytes, limits.head_timeout_s, limits.body_timeout_s, fitted)
