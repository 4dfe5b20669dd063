"""The bytes of one attempt: the ``httpx.Request`` a connection sends, and reading its answer.

``build_request`` makes what ``client.request(..., json=...)`` would, without its cost (this runs
for every request); ``request_bytes`` turns it into the bytes ``Http11Transport`` writes (checked
as h11 checks them); ``read_body`` turns an answer into JSON or bounded text.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from automations.endpoints import mask_url
from automations.ratelimit import Slot

__all__ = [
    "MAX_TEXT_BODY",
    "NoCookies",
    "build_request",
    "masked_url",
    "parsed_url",
    "read_body",
    "refuse_to_send",
    "report_sending",
    "request_bytes",
]

#: Text bodies are kept up to this many characters (JSON bodies are parsed whole).
MAX_TEXT_BODY = 4096
# Methods that carry Content-Length even when empty (as httpx sends them).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# h11's rules for a header value: no control characters, no whitespace at either end
_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
_TARGET = re.compile(rb"[^\x00\s]+")
# httpx's own JSON encoding of ``json=`` bodies.
_JSON_BODY = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class NoCookies(httpx.Cookies):
    """A cookie jar that neither stores nor sends cookies."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


def build_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body_json: Any,
    merged: httpx.Headers,
    own_headers: tuple[tuple[str, str], ...],
    extensions: dict[str, Any],
) -> httpx.Request:
    """The ``httpx.Request`` for one attempt. ``merged`` holds every header to send (the
    client's, the connection's, the request's own); ``own_headers`` the request's own, whose
    names decide which headers httpx would add itself. The body is compact UTF-8 JSON, as httpx
    encodes it."""
    # The headers httpx adds itself, where it adds them (Host first, a JSON body's length
    # and type last), unless the request sets them.
    own = {name.lower() for name, _ in own_headers}
    target = parsed_url(url)
    body = b"" if body_json is None else _JSON_BODY(body_json).encode()
    head = [] if "host" in own else [(b"Host", target.netloc)]
    tail = []
    if body_json is not None:
        if "content-length" not in own:
            tail.append((b"Content-Length", str(len(body)).encode()))
        if "content-type" not in own:
            tail.append((b"Content-Type", b"application/json"))
    elif method in _BODY_METHODS and "content-length" not in own:
        head.append((b"Content-Length", b"0"))
    extensions.setdefault("timeout", client.timeout.as_dict())
    return httpx.Request(
        method,
        target,
        headers=[*head, *merged.raw, *tail],
        stream=httpx.ByteStream(body),
        extensions=extensions,
    )


async def request_bytes(request: httpx.Request) -> bytes:
    """The request's bytes on the wire: its head, then its body framed as its headers say.
    ``LocalProtocolError`` (nothing sent) for a method, target or header HTTP/1.1 cannot carry."""
    stream = request.stream
    if isinstance(stream, httpx.ByteStream):
        body = b"".join(stream)
    else:
        body = b"".join([chunk async for chunk in stream])  # type: ignore[union-attr]
    method = request.method.encode("ascii", "replace")
    target = request.url.raw_path
    if not _TOKEN.fullmatch(method):
        raise httpx.LocalProtocolError(f"Illegal method {method!r}")
    if not _TARGET.fullmatch(target):
        raise httpx.LocalProtocolError(f"Illegal target characters {target!r}")
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    length: bytes | None = None
    chunked = False
    for name, value in request.headers.raw:
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"Illegal header name {name!r}")
        if not _VALUE.fullmatch(value):
            raise httpx.LocalProtocolError(f"Illegal header value {value!r}")
        lower = name.lower()
        if lower == b"content-length":
            if length is not None and length != value.strip():
                raise httpx.LocalProtocolError("conflicting Content-Length headers")
            length = value.strip()
        elif lower == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                raise httpx.LocalProtocolError("Only Transfer-Encoding: chunked is supported")
            chunked = True
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if chunked:
        if length is not None:
            raise httpx.LocalProtocolError("both Content-Length and Transfer-Encoding are set")
        parts += (b"%x\r\n" % len(body), body, b"\r\n0\r\n\r\n") if body else (b"0\r\n\r\n",)
    elif body or length is not None:
        if length is None or not length.isdigit() or int(length) != len(body):
            raise httpx.LocalProtocolError("the body's length differs from its Content-Length")
        parts.append(body)
    return b"".join(parts)


def read_body(response: httpx.Response) -> Any:
    """The body as JSON when it is JSON, else as text (at most ``MAX_TEXT_BODY`` characters);
    ``None`` when empty."""
    content = response.content
    if not content.strip():
        return None
    # JSON is parsed from the bytes (as ``response.json()`` does): decoding them to text first
    # would cost as much again, for nothing.
    # (What the body starts with is checked first: cheaper than looking up a header.)
    if content.lstrip()[:1] in (b"{", b"[") or "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(content)
        except ValueError:
            pass
    text = response.text
    if not text.strip():
        return None
    return text if len(text) <= MAX_TEXT_BODY else text[:MAX_TEXT_BODY] + "…"


# Provider URLs repeat (a base URL and a few fixed paths): parse and mask each once. Bounded,
# because ``http.request`` URLs are templated and may differ on every run.
parsed_url = functools.lru_cache(maxsize=256)(httpx.URL)
masked_url = functools.lru_cache(maxsize=256)(mask_url)


def report_sending(slot: Slot) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore ``trace`` hook telling the limiter when the request really went out: the
    first request of a burst spends a connection handshake on the way, the next ones do not."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            slot.sent()

    return trace


def refuse_to_send(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("preview connections never send requests")
