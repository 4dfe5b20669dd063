"""The runner's side of its intake process (``child``): start it, feed it, hear from it.

- **Start**: before the intake process starts, whatever a previous one recorded and no runner
  moved yet (a crash) is moved into ``runs``. The intake process gets the webhook port's socket
  (bound by the runner before anything started), the configuration and the webhook recipes,
  and says ``ready``.
- **Recipes**: each hot reload sends the webhook recipes that changed (and the paths gone).
- **Events**: each ``recorded`` message moves the inbox file's new rows into ``runs`` (SQLite:
  ``InboxMover``, a page at a time on a store thread of its own) and wakes the dispatcher for
  their recipes; on PostgreSQL the runs are in ``runs`` already: the dispatcher is woken.
- **Health**: ``/healthz`` is answered by the intake process with what this runner says.
- **Failure**: an intake process that exits on its own is started again (the socket stays
  bound here, so no delivery is refused for long); more than ``MAX_RESTARTS`` in a minute stop
  the runner with an error.
- **Stop**: the intake process stops taking events and exits; what it recorded is moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from automations.errors import StartupError
from automations.intake.priority import Spawner, lower_runner
from automations.intake.settings import IntakeConfig, route_of
from automations.intake.wire import encode, open_pipes
from automations.model import Recipe
from automations.ports import Claimed
from automations.runner.health import HealthSection
from automations.runner.registry import RecipeSet
from automations.runner.service import Runner
from automations.stores.sqlite_inbox import InboxMover
from automations.stores.thread import StoreThread

__all__ = ["IntakeLink"]

log = logging.getLogger("automations.runner")

#: How long the intake process has to say it is ready.
START_S = 60.0
#: Restarts of a failing intake process allowed per minute before the runner gives up.
MAX_RESTARTS = 5
#: How often the inbox is looked at without being told (a message lost, a start).
SWEEP_S = 1.0
#: During a flood of webhooks, a run waits for ``FLOOD_QUIET_S`` without one, at most
#: ``FLOOD_WAIT_S`` (``runner.inbox.IntakePressure``): with 8 runs at once per lane, at least 32
#: runs a second still start per lane, over three times what a provider's limit lets through.
FLOOD_QUIET_S = 0.005
#: A commit of the intake process holding this many webhooks or more means they queue up
#: there (a steady stream, even of hundreds a second, commits them one by one): a flood.
BUSY_BATCH = 4
FLOOD_WAIT_S = 0.25
#: During a flood, the inbox is moved this often (pages of hundreds, not a transaction per
#: commit of the intake process); otherwise at once.
FLOOD_MOVE_S = 0.1
#: How long a stopping intake process may take before it is killed.
STOP_S = 10.0


class IntakeLink:
    """The runner's side of its intake process: starts it on the listening socket and restarts
    it, sends it the webhook recipes on each reload, answers its ``/healthz`` questions, and
    moves what it recorded into the run store (claiming what the dispatcher has room for)."""

    def __init__(
        self,
        runner: Runner,
        config: IntakeConfig,
        sock: socket.socket,
        mover: InboxMover | None,
        *,
        failed: Callable[[str], None],
        nice: int = 0,
    ) -> None:
        self.runner = runner
        self.config = config
        self.sock = sock
        self.mover = mover
        self._failed = failed
        self._nice = nice
        self._spawner = Spawner()
        self._proc: subprocess.Popen[bytes] | None = None
        self._transport: asyncio.WriteTransport | None = None
        self._ready = asyncio.Event()
        self._exited = asyncio.Event()
        #: Set once stopping and the intake process has exited.
        self._done = asyncio.Event()
        self._stopping = False
        self._restarts: list[float] = []
        #: How many times the intake process exited on its own (and was started again).
        self.restarts = 0
        #: The webhook recipes the intake process has, by path (what to send on a reload).
        self._sent: dict[str, Recipe] = {}
        self._move_wanted = asyncio.Event()
        #: When the intake process last said webhooks queue up there (a flood).
        self._busy_at = float("-inf")
        self._io = StoreThread("store-inbox")
        self._tasks: list[asyncio.Task[None]] = []
        self.moved = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Move what a previous intake left, start the intake process and wait until it
        serves."""
        if self.mover is not None:
            await self._move_all()
        self.runner.recipe_listeners.append(self.recipes_changed)
        # while webhooks keep coming, each run waits for a pause in them (at most this long):
        # a flood is recorded at the intake's pace, executed right after
        pressure = self.runner.pressure
        pressure.quiet_s, pressure.max_wait_s = FLOOD_QUIET_S, FLOOD_WAIT_S
        self.runner.health.add(HealthSection("intake", self._view))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._mover_forever())]
        await self._spawn()
        lower_runner(self._nice, self._spawner.native_id)

    def _view(self) -> dict[str, Any]:
        """``/healthz``'s detail: the intake process, its restarts, the webhooks moved."""
        proc = self._proc
        return {
            "process": "separate",
            "pid": None if proc is None else proc.pid,
            "restarts": self.restarts,
            "moved_from_inbox": self.moved,
        }

    def stop(self) -> None:
        """Stop taking events (the runner is stopping)."""
        self._stopping = True
        self._send(("stop",))
        if self._exited.is_set() or self._proc is None:
            self._done.set()

    async def close(self) -> None:
        """Wait for the intake process to exit (killing it after ``STOP_S``), then move what it
        recorded."""
        self.stop()
        proc = self._proc
        if proc is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.wait), STOP_S)
            except TimeoutError:
                log.warning("the intake process did not stop in %.0f s: killed", STOP_S)
                proc.kill()
                await asyncio.to_thread(proc.wait)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.mover is not None:
            try:
                await self._move_all()
            except Exception as exc:  # moved at the next start
                log.warning("could not move the last webhooks into the run store: %s", exc)
        await asyncio.to_thread(self._io.close)
        await asyncio.to_thread(self._spawner.close)

    async def wait(self) -> None:
        """Return once stopped and the intake process has exited."""
        await self._done.wait()

    async def _spawn(self) -> None:
        ctl_read, ctl_write = os.pipe()
        evt_read, evt_write = os.pipe()
        try:
            args = [sys.executable, "-m", "automations.intake", str(ctl_read), str(evt_write)]
            args.append(str(os.getpid()))
            pass_fds = (ctl_read, evt_write, self.sock.fileno())
            self._proc = await asyncio.to_thread(
                self._spawner.run,
                lambda: subprocess.Popen(args, pass_fds=pass_fds, stdin=subprocess.DEVNULL),
            )
        finally:
            os.close(ctl_read)
            os.close(evt_write)
        self._ready.clear()
        self._exited.clear()
        self._transport = await open_pipes(evt_read, ctl_write, self._on_message, self._on_close)
        self._send(("config", self.config))
        self._sent = {}
        self.recipes_changed(self.runner.recipes)
        waits = [asyncio.ensure_future(e.wait()) for e in (self._ready, self._exited)]
        await asyncio.wait(waits, timeout=START_S, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if not self._ready.is_set():
            raise StartupError(
                "the webhook intake process did not start (its log above says why); nothing "
                "was recorded by it"
            )

    def _on_close(self) -> None:
        """The pipe from the intake process closed: it exited."""
        self._exited.set()
        self._transport = None
        if self._stopping:
            self._done.set()
            return
        if not self._ready.is_set():  # it never started: ``_spawn`` reports that
            return
        proc = self._proc
        code = None if proc is None else proc.poll()
        now = time.monotonic()
        self.restarts += 1
        self._restarts = [t for t in self._restarts if now - t < 60] + [now]
        if len(self._restarts) > MAX_RESTARTS:
            self._failed(f"the webhook intake process keeps exiting (last exit status {code})")
            return
        log.error("the webhook intake process exited (status %s): starting it again", code)
        self._tasks.append(asyncio.get_running_loop().create_task(self._respawn()))

    async def _respawn(self) -> None:
        if self._proc is not None:
            await asyncio.to_thread(self._proc.wait)
        if not self._stopping:
            try:
                await self._spawn()
            except (StartupError, OSError) as exc:
                self._failed(f"the webhook intake process could not be started again: {exc}")

    # -- messages ----------------------------------------------------------------------------

    def _send(self, message: tuple[Any, ...]) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(encode(message))

    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        runner = self.runner
        if kind == "recorded":
            if message[2] >= BUSY_BATCH:  # requests queue up at the intake: a flood
                runner.pressure.note()
                self._busy_at = time.monotonic()
            if self.mover is not None:
                self._move_wanted.set()
            else:
                for recipe in message[1]:
                    if runner.lane_of(recipe) is not None:
                        runner.dispatcher.wake(recipe)
        elif kind == "health?":
            health = runner.health
            body = health.answer(detail=bool(message[2]))
            self._send(("health", message[1], 200 if health.started else 503, body))
        elif kind == "rejected":
            for reason, count in message[1].items():
                runner.metrics.intake_rejected(reason, count)
        elif kind == "ready":
            self._ready.set()

    def recipes_changed(self, recipes: RecipeSet) -> None:
        """Send the intake process the webhook recipes that changed since the last send."""
        hooks = recipes.hooks
        changed = {p: r for p, r in hooks.items() if self._sent.get(p) is not r}
        gone = [p for p in self._sent if p not in hooks]
        if changed or gone or not self._sent:
            routes = {path: route_of(recipe) for path, recipe in changed.items()}
            self._send(("recipes", routes, gone))
        self._sent = dict(hooks)

    # -- moving the inbox (SQLite) -----------------------------------------------------------

    async def _mover_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._move_wanted.wait(), SWEEP_S)
            self._move_wanted.clear()
            if self.mover is None:
                continue
            if time.monotonic() - self._busy_at < FLOOD_MOVE_S:
                # a flood: let a page gather (each move is a transaction of the run store)
                await asyncio.sleep(FLOOD_MOVE_S)
            try:
                await self._move_all()
            except Exception as exc:  # the next message or sweep tries again
                log.warning("could not move webhooks into the run store: %s", exc)

    async def _move_all(self) -> None:
        assert self.mover is not None
        while True:
            moved, dropped, claimed = await self._io(self._move_page)
            for run_id in dropped:
                log.warning(
                    "webhook run %s dropped: its event was recorded already (a repeated "
                    "delivery answered twice); it runs once",
                    run_id[:12],
                )
            if not moved and not dropped:
                return
            self.moved += sum(moved.values())
            self._hand_over(moved, claimed)

    def _move_page(self) -> tuple[dict[str, int], list[str], list[Claimed]]:
        """One page moved, and as many of its runs claimed as the dispatcher has room for, in
        one transaction of the run store (the store thread's): a run goes from the inbox to
        this node's queue without a second commit, or a claim loop's round trip."""
        assert self.mover is not None
        runner = self.runner
        store = runner.store
        claimed: list[Claimed] = []
        with store.transaction():
            moved, dropped = self.mover.move()
            for recipe, count in moved.items():
                room = min(count, runner.dispatcher.room(recipe))
                if room > 0:
                    claimed += store.claim_ready(
                        runner.node, ttl_s=runner.claims.ttl_s, limit=room, recipe=recipe
                    )
        return moved, dropped, claimed

    def _hand_over(self, moved: dict[str, int], claimed: list[Claimed]) -> None:
        """On the runner's loop: the claimed runs to the dispatcher; the recipes with runs
        left unclaimed woken (it claims them as it has room)."""
        runner = self.runner
        taken = runner.take_claims(claimed)
        for recipe, count in moved.items():
            if taken.get(recipe, 0) < count and runner.lane_of(recipe) is not None:
                runner.dispatcher.wake(recipe)
