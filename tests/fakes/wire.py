"""A loopback HTTP/1.1 server that answers from a script, byte for byte: for what the vendor
fakes (starlette under uvicorn) cannot do, such as closing a connection after reading a request,
answering in chunks or sending bytes that are not HTTP.

    async with WireServer([ok(b'{"id": 1}'), CLOSE]) as server:
        ...  # server.url; afterwards server.requests, server.connections

Each request read takes the next entry of the script (the last one repeats): ``bytes`` are
written as the answer, ``CLOSE`` closes the connection without answering, ``HANG`` never
answers, ``CloseAfter(answer)`` answers then closes (without saying so), ``IGNORE`` reads nothing
more from that connection and never answers (a server that stopped reading). Requests are
recorded whole (head and decoded body) with the number of the connection they came on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import Any

__all__ = ["CLOSE", "HANG", "IGNORE", "CloseAfter", "WireRequest", "WireServer", "ok"]

CLOSE = "close"
HANG = "hang"
IGNORE = "ignore"


@dataclass(frozen=True)
class CloseAfter:
    answer: bytes


@dataclass(frozen=True)
class WireRequest:
    connection: int
    head: bytes
    body: bytes

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def ok(body: bytes = b"{}", status: bytes = b"200 OK", headers: bytes = b"") -> bytes:
    """A complete answer with a ``Content-Length``."""
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + headers
        + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


class WireServer:
    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.requests: list[WireRequest] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> WireServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _next(self) -> Any:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self._writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.append(task)
        try:
            while True:
                entry = self._next() if self.script else HANG
                if entry == IGNORE:
                    await asyncio.sleep(3600)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                body = await _read_body(reader, head)
                self.requests.append(WireRequest(number, head, body))
                if entry == CLOSE:
                    writer.close()
                    return
                if entry == HANG:
                    await asyncio.sleep(3600)
                if isinstance(entry, CloseAfter):
                    writer.write(entry.answer)
                    await writer.drain()
                    writer.close()
                    return
                writer.write(entry)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    request = WireRequest(0, head, b"")
    length = request.header(b"content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    if (request.header(b"transfer-encoding") or b"").lower() == b"chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])
    return b""
