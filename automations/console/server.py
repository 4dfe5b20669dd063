"""The console's listener inside ``automations run``: a second uvicorn server on the runner's
event loop, on its own address, with its own store connection.

The runner owns the signals: ``stop()`` ends the event streams (which would otherwise hold
uvicorn's shutdown open forever) and the server; ``close()`` releases the store connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.routing import BaseRoute, Route

from automations.console.app import Console, build_console
from automations.console.auth import Gate, check_bind
from automations.console.host import RunnerHost
from automations.metrics import metrics_endpoint
from automations.ports import Store
from automations.runner.embedded import EmbeddedServer
from automations.stores import open_store

if TYPE_CHECKING:
    from automations.runner.service import Runner

__all__ = ["DEFAULT_UI_HOST", "DEFAULT_UI_PORT", "ConsoleServer"]

DEFAULT_UI_HOST = "127.0.0.1"
DEFAULT_UI_PORT = 8788


class ConsoleServer:
    """The console of ``runner``, reading ``location`` (the runner's database) through a
    connection of its own."""

    def __init__(
        self,
        runner: Runner,
        location: str,
        env: Mapping[str, str],
        *,
        extra_routes: Sequence[BaseRoute] = (),
        **options: Any,
    ) -> None:
        self.gate = Gate.from_env(env)
        # a private in-memory database is visible to its own connection only
        self._own_store = location != ":memory:"
        self.store: Store = (
            open_store(location, application_name=f"automations:{runner.node}:console")
            if self._own_store
            else runner.store
        )
        # /metrics behind the console's guard (a session, or the token as a Bearer); its store
        # gauges read through the console's connection, so a scrape never waits on the runner's
        if runner.metrics.store_gauges is not None:
            runner.metrics.store_gauges.store = self.store
        scrape = metrics_endpoint(runner.metrics.registry, token=None)
        routes = [Route("/metrics", scrape, methods=["GET"]), *extra_routes]
        self.app = build_console(
            self.store, RunnerHost(runner), self.gate, extra_routes=routes, **options
        )
        self.console: Console = self.app.state.console
        self._server = EmbeddedServer(
            uvicorn.Config(
                self.app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
        )

    async def serve(self, sock: socket.socket) -> None:
        sampler = asyncio.get_running_loop().create_task(self.console.sample_forever())
        try:
            await self._server.serve(sockets=[sock])
        finally:
            self.console.stopping.set()
            await sampler

    def stop(self) -> None:
        self.console.stopping.set()
        self._server.should_exit = True

    def close(self) -> None:
        self.console.close()
        if self._own_store:
            self.store.close()


def check_console_bind(host: str, env: Mapping[str, str]) -> None:
    """``auth.check_bind`` with the token from ``env``."""
    check_bind(host, Gate.from_env(env).token)
