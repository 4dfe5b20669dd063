"""Messages between the runner and its intake process: pickled tuples, each behind its length.

Both ends are this package, started by the runner itself over two pipes it created (the
intake process is its child), so what is unpickled was pickled by the same code: nothing from
outside ever travels here. The first element of each tuple names the message:

runner -> intake: ``("config", IntakeConfig)`` first, then ``("recipes", {path: Recipe},
[paths gone])``, ``("health", request id, status code, body)``, ``("stop",)``.

intake -> runner: ``("ready",)``, ``("recorded", {recipe: new runs}, webhooks in the commit)``
after each commit,
``("rejected", {reason: count})`` (at most every ``FLUSH_S``), ``("health?", request id,
detail)``.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
from collections.abc import Callable
from typing import Any

__all__ = ["FLUSH_S", "Framer", "encode", "open_pipes"]

_HEADER = struct.Struct("!I")
#: How often the intake process reports what it refused (a rejection's metric lags this much).
FLUSH_S = 0.1


def encode(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


class Framer(asyncio.Protocol):
    """Reads messages from a pipe, handing each to ``on_message``; ``on_close`` when it ends
    (the other process exited)."""

    def __init__(
        self, on_message: Callable[[tuple[Any, ...]], None], on_close: Callable[[], None]
    ) -> None:
        self._on_message = on_message
        self._on_close = on_close
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + size
            if len(buffer) < end:
                break
            message = pickle.loads(bytes(buffer[start + _HEADER.size : end]))
            start = end
            self._on_message(message)
        del buffer[:start]

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_close()


async def open_pipes(
    read_fd: int,
    write_fd: int,
    on_message: Callable[[tuple[Any, ...]], None],
    on_close: Callable[[], None],
) -> asyncio.WriteTransport:
    """Read messages from ``read_fd`` on the running loop; returns the transport writing to
    ``write_fd`` (``transport.write(encode(message))``, never blocking the loop)."""
    loop = asyncio.get_running_loop()
    reader = os.fdopen(read_fd, "rb", buffering=0)
    writer = os.fdopen(write_fd, "wb", buffering=0)
    await loop.connect_read_pipe(lambda: Framer(on_message, on_close), reader)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, writer)
    return transport
