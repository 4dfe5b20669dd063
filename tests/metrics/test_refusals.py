"""The HTTP guard's refusals reach the metrics with their reason: a real uvicorn on loopback with
``guarded_protocol(limits, on_refusal)``, and raw sockets."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from automations.runner.httpguard import HttpLimits, guarded_protocol

pytestmark = pytest.mark.integration


async def _ok(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return answer


def test_a_431_and_a_head_timeout_are_counted_by_reason() -> None:
    refusals: list[str] = []
    limits = HttpLimits(max_head_bytes=1024, head_timeout_s=0.3)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    async def main() -> list[bytes]:
        config = uvicorn.Config(
            Starlette(routes=[Route("/", _ok)]),
            http=guarded_protocol(limits, refusals.append),
            log_level="warning",
            lifespan="off",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2048 + b"\r\n\r\n"
            fine = await _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            too_big = await _exchange(port, big)
            slow = await _exchange(port, b"GET / HTTP/1.1\r\n")  # and nothing more
            return [fine, too_big, slow]
        finally:
            server.should_exit = True
            await task

    fine, too_big, slow = asyncio.run(main())
    sock.close()
    assert fine.startswith(b"HTTP/1.1 200")
    assert too_big.startswith(b"HTTP/1.1 431")
    assert slow.startswith(b"HTTP/1.1 408")
    assert refusals == ["header_size", "timeout"]
