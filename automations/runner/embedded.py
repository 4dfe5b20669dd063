"""uvicorn embedded in a process that handles its own signals.

``uvicorn.Server`` installs SIGINT/SIGTERM handlers of its own while it serves. The runner (its
webhook port and console) and the intake process stop their servers themselves, in their own
order (stop taking requests, then drain the runs, or answer what is in flight), so each serves
through ``EmbeddedServer``, which leaves signals to its owner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn

__all__ = ["EmbeddedServer"]


class EmbeddedServer(uvicorn.Server):
    """``uvicorn.Server`` without its own signal handling: its owner stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
