"""``Http11Transport`` over real loopback sockets: what goes on the wire, what comes back, and
which httpx error each failure is (``Connections`` decides from it whether a request may have
been delivered)."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from automations.connections import Connections, ConnectionSettings
from automations.connections.http11 import Http11Transport
from tests.fakes.wire import CLOSE, HANG, IGNORE, CloseAfter, WireServer, ok

pytestmark = pytest.mark.integration

T = TypeVar("T")
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"


def over(
    script: list[Any],
    use: Callable[[httpx.AsyncClient, WireServer], Awaitable[T]],
    *,
    timeout: httpx.Timeout = httpx.Timeout(2.0),  # noqa: B008
    **pool: Any,
) -> tuple[T, WireServer]:
    async def main() -> tuple[T, WireServer]:
        async with WireServer(script) as server:
            transport = Http11Transport(**pool)
            async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
                return await use(client, server), server

    return asyncio.run(main())


def test_requests_one_after_another_share_one_connection() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> list[Any]:
        return [(await client.post(server.url + "/v1/x", json={"i": i})).json() for i in range(5)]

    answers, server = over([ok(b'{"ok": true}')], use)
    assert answers == [{"ok": True}] * 5
    assert server.connections == 1
    assert [r.body for r in server.requests] == [b'{"i":%d}' % i for i in range(5)]
    assert server.requests[0].request_line == b"POST /v1/x HTTP/1.1"
    assert server.requests[0].header(b"content-length") == b"7"
    assert server.requests[0].header(b"host") == server.url.removeprefix("http://").encode()


def test_concurrent_requests_open_a_connection_each_then_reuse_them() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> list[int]:
        statuses = []
        for _ in range(3):
            answers = await asyncio.gather(*(client.get(server.url + "/") for _ in range(4)))
            statuses += [a.status_code for a in answers]
        return statuses

    statuses, server = over([ok()], use)
    assert statuses == [200] * 12
    assert (server.connections, len(server.requests)) == (4, 12)


def test_idle_connections_beyond_the_keepalive_limit_are_closed() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> None:
        await asyncio.gather(*(client.get(server.url + "/") for _ in range(4)))
        await asyncio.gather(*(client.get(server.url + "/") for _ in range(4)))

    _, server = over([ok()], use, max_keepalive_connections=1)
    # each round: 4 at once, 1 of them kept for the next round
    assert (server.connections, len(server.requests)) == (7, 8)


def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> list[int]:
        first = await client.get(server.url + "/")
        await asyncio.sleep(0.05)  # the close reaches the client
        second = await client.get(server.url + "/")
        return [first.status_code, second.status_code]

    statuses, server = over([CloseAfter(ok())], use)
    assert statuses == [200, 200]
    assert (server.connections, len(server.requests)) == (2, 2)


def test_an_answer_saying_close_ends_its_connection() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> None:
        for _ in range(2):
            await client.get(server.url + "/")

    _, server = over([ok(headers=b"Connection: close\r\n")], use)
    assert (server.connections, len(server.requests)) == (2, 2)


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (CHUNKED, b"abcde"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"[1]"), b"[1]"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        (ok(gzip.compress(b'{"z": 1}'), headers=b"Content-Encoding: gzip\r\n"), b'{"z": 1}'),
    ],
    ids=["chunked", "informational-first", "no-content", "gzip"],
)
def test_answers_are_read_whole_and_the_connection_kept(answer: bytes, body: bytes) -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> list[bytes]:
        return [(await client.get(server.url + "/")).content for _ in range(2)]

    contents, server = over([answer], use)
    assert contents == [body, body]
    assert server.connections == 1


def test_an_answer_delimited_by_the_end_of_the_connection() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> bytes:
        return (await client.get(server.url + "/")).content

    content, _ = over([CloseAfter(b"HTTP/1.1 200 OK\r\n\r\nall of it")], use)
    assert content == b"all of it"


def test_the_answer_to_head_has_no_body() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> list[Any]:
        first = await client.head(server.url + "/")
        second = await client.get(server.url + "/")
        return [(first.status_code, first.content), (second.status_code, second.content)]

    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    answers, server = over([head, ok(b"12345")], use)
    assert answers == [(200, b""), (200, b"12345")]
    assert [r.request_line.split()[0] for r in server.requests] == [b"HEAD", b"GET"]


@pytest.mark.parametrize(
    ("script", "error", "message"),
    [
        ([CLOSE], httpx.RemoteProtocolError, "Server disconnected without sending a response."),
        (
            [CloseAfter(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")],
            httpx.RemoteProtocolError,
            "peer closed connection without sending complete message body",
        ),
        ([b"SMTP ready\r\n\r\n"], httpx.RemoteProtocolError, "not valid HTTP/1.1"),
        ([HANG], httpx.ReadTimeout, "no answer came in time"),
    ],
    ids=["closed", "cut", "garbage", "silent"],
)
def test_a_request_that_left_without_a_complete_answer(
    script: list[Any], error: type[Exception], message: str
) -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> None:
        await client.post(server.url + "/v1/contacts", json={"a": 1})

    with pytest.raises(error, match=message):
        over(script, use, timeout=httpx.Timeout(0.3))


def test_each_failure_arrives_once_and_the_next_request_gets_a_new_connection() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> int:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.url + "/", json={})
        return (await client.post(server.url + "/", json={})).status_code

    status, server = over([CLOSE, ok()], use)
    assert status == 200
    assert (server.connections, len(server.requests)) == (2, 2)


def test_nothing_listening_is_a_connect_error() -> None:
    async def main() -> None:
        async with WireServer([ok()]) as server:
            url = server.url
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            await client.get(url + "/")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(main())


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Name": "ada\r\nX-Injected: 1"}, "Illegal header value"),
        ({"X-Name": " padded"}, "Illegal header value"),
        ({"Bad Name": "x"}, "Illegal header name"),
        ({"Content-Length": "3"}, "differs from its Content-Length"),
        ({"Transfer-Encoding": "gzip"}, "Only Transfer-Encoding: chunked"),
    ],
    ids=["crlf", "padded", "name", "length", "encoding"],
)
def test_a_request_that_cannot_be_sent_is_refused_before_connecting(
    headers: dict[str, str], message: str
) -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> None:
        request = httpx.Request(
            "POST", server.url + "/", headers=headers, stream=httpx.ByteStream(b'{"a":1}')
        )
        await client.send(request)

    async def main() -> WireServer:
        async with WireServer([ok()]) as server:
            async with httpx.AsyncClient(transport=Http11Transport()) as client:
                with pytest.raises(httpx.LocalProtocolError, match=message):
                    await use(client, server)
            return server

    server = asyncio.run(main())
    assert (server.connections, server.requests) == (0, [])


def test_a_chunked_request_body_is_framed_as_its_header_says() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> int:
        request = httpx.Request(
            "POST",
            server.url + "/",
            headers={"Transfer-Encoding": "chunked"},
            stream=httpx.ByteStream(b"hello"),
        )
        return (await client.send(request)).status_code

    status, server = over([ok()], use)
    assert status == 200
    assert server.requests[0].body == b"hello"


def test_waiting_for_a_free_connection_times_out() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> None:
        stuck = asyncio.ensure_future(client.get(server.url + "/"))
        await asyncio.sleep(0.05)
        try:
            with pytest.raises(httpx.PoolTimeout):
                await client.get(server.url + "/", timeout=httpx.Timeout(5.0, pool=0.1))
        finally:
            stuck.cancel()

    _, server = over([HANG], use, max_connections=1)
    assert (server.connections, len(server.requests)) == (1, 1)


def test_a_freed_connection_goes_to_the_request_waiting_for_one() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> list[int]:
        answers = await asyncio.gather(*(client.get(server.url + "/") for _ in range(3)))
        return [a.status_code for a in answers]

    statuses, server = over([ok()], use, max_connections=1)
    assert statuses == [200, 200, 200]
    assert (server.connections, len(server.requests)) == (1, 3)


def test_a_server_that_stops_reading_is_a_write_timeout() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> None:
        body = b"x" * (64 << 20)
        with pytest.raises(httpx.WriteTimeout):
            await client.post(server.url + "/", content=body)

    over([IGNORE], use, timeout=httpx.Timeout(5.0, write=0.2))


def test_a_cancelled_request_leaves_its_connection_closed_not_pooled() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> int:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.get(server.url + "/"), 0.1)
        return (await client.get(server.url + "/")).status_code

    status, server = over([HANG, ok()], use)
    assert status == 200
    assert (server.connections, len(server.requests)) == (2, 2)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_with_a_verified_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusted = ssl.create_default_context(cafile=str(cert))

    async def main() -> tuple[list[int], int]:
        server = WireServer([ok()])
        tls = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=served)
        port = tls.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(transport=Http11Transport(ssl_context=trusted)) as c:
                statuses = [(await c.get(f"https://127.0.0.1:{port}/")).status_code for _ in "ab"]
            # the default context (httpx's: certifi's CAs) verifies, and knows nothing of this one
            async with httpx.AsyncClient(transport=Http11Transport()) as c:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await c.get(f"https://127.0.0.1:{port}/")
        finally:
            tls.close()
            for task in server._tasks:
                task.cancel()
            await asyncio.gather(*server._tasks, return_exceptions=True)
        return statuses, server.connections

    statuses, connections = asyncio.run(main())
    assert statuses == [200, 200]
    assert connections == 1  # the refused handshake never reached the server's handler


def test_connections_keep_httpx_transport_when_a_proxy_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def kinds() -> list[type]:
        found = []
        for proxy in ("", "http://proxy.invalid:3128"):
            monkeypatch.setenv("HTTPS_PROXY", proxy)
            async with Connections(ConnectionSettings()) as conns:
                found.append(type(conns._http()._transport))
        return found

    for name in ("HTTP_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert asyncio.run(kinds()) == [Http11Transport, httpx.AsyncHTTPTransport]


def test_an_idle_connection_to_another_origin_makes_room_at_the_limit() -> None:
    async def main() -> tuple[list[int], int, int]:
        async with WireServer([ok()]) as a, WireServer([ok()]) as b:
            async with httpx.AsyncClient(transport=Http11Transport(max_connections=1)) as c:
                urls = [a.url, b.url, a.url]
                statuses = [(await c.get(u + "/", timeout=0.5)).status_code for u in urls]
            return statuses, a.connections, b.connections

    assert asyncio.run(main()) == ([200, 200, 200], 2, 1)


def test_send_gives_the_answer_read_whole_and_decoded() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> list[Any]:
        transport = Http11Transport()
        request = httpx.Request(
            "GET", server.url + "/x", extensions={"timeout": {"read": 1.0, "connect": 1.0}}
        )
        answers = [await transport.send(request) for _ in range(2)]
        await transport.aclose()
        return [(a.status_code, a.content, a.request is request) for a in answers]

    zipped = ok(gzip.compress(b'{"z": 1}'), headers=b"Content-Encoding: gzip\r\n")
    answers, server = over([zipped], use)
    assert answers == [(200, b'{"z": 1}', True)] * 2
    assert server.connections == 1


def test_an_answer_whose_head_never_ends_fails() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> None:
        await client.get(server.url + "/")

    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 200_000 + b"\r\n"
    with pytest.raises(httpx.RemoteProtocolError, match="head is too long"):
        over([endless], use)


def test_a_large_answer_arriving_with_its_head_is_read() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> int:
        return len((await client.get(server.url + "/")).content)

    size, _ = over([ok(b"b" * 1_000_000)], use)
    assert size == 1_000_000


def test_a_chunked_answer_s_trailers_are_not_headers() -> None:
    async def use(client: httpx.AsyncClient, server: WireServer) -> tuple[bytes, list[str]]:
        answer = await client.get(server.url + "/")
        return answer.content, list(answer.headers)

    trailed = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n"
    )
    (content, names), _ = over([trailed], use)
    assert (content, names) == (b"ok", ["transfer-encoding"])
