"""The nemesis: seeded faults against the nodes and their database, one after another.

Four kinds, each at least once per run (then more, picked at random), with random pauses
between them; every fault ends with the system whole again (the node restarted or resumed,
the server up), so the next fault starts from a working cluster:

- ``sigkill``: SIGKILL a node, leave it down a moment, start it again;
- ``sigstop``: SIGSTOP a node for longer than its lease (``pause_s``), then SIGCONT: its runs
  were rescued meanwhile, and it must not send for them when it wakes;
- ``terminate``: ``pg_terminate_backend`` on every connection of one node (by its
  ``application_name``): its pool must reconnect;
- ``pg-restart``: PostgreSQL stopped with ``-m immediate`` (a crash: every node loses every
  connection at once), down a moment, started again (crash recovery).

The same seed gives the same schedule (kinds, targets, pauses); the timing of the rest of the
system still varies, so a seed reproduces a failure often, not always.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

from tests.nemesis.cluster import PostgresServer
from tests.nemesis.history import Fault
from tests.nemesis.nodes import Node

__all__ = ["KINDS", "Nemesis"]

KINDS = ("sigkill", "sigstop", "terminate", "pg-restart")


class Nemesis:
    def __init__(
        self,
        seed: int,
        nodes: Sequence[Node],
        server: PostgresServer,
        *,
        pause_s: float,
        application_name: Callable[[Node], str],
        gap_s: tuple[float, float] = (1.5, 4.0),
    ) -> None:
        self.rng = random.Random(seed)
        self.nodes = nodes
        self.server = server
        self.pause_s = pause_s
        self.application_name = application_name
        self.gap_s = gap_s
        self.faults: list[Fault] = []
        self.errors: list[str] = []

    def plan(self, extra: int) -> list[str]:
        """The kinds of fault to make, in order: each kind once, then ``extra`` more."""
        kinds = list(KINDS)
        self.rng.shuffle(kinds)
        return kinds + [self.rng.choice(KINDS) for _ in range(extra)]

    def run(self, stop: threading.Event, until: float, extra: int = 2) -> None:
        """Make the planned faults until ``until`` (``time.monotonic()``) or ``stop``; a fault
        started always ends (the node back, the server up)."""
        for kind in self.plan(extra):
            if stop.wait(self.rng.uniform(*self.gap_s)) or time.monotonic() > until:
                return
            node = self.rng.choice(self.nodes)
            try:
                getattr(self, "_" + kind.replace("-", "_"))(node)
            except Exception as exc:  # reported by the test, with the seed
                self.errors.append(f"{kind} on {node.name}: {exc}")
                return

    def _record(self, kind: str, target: str, detail: str = "") -> None:
        self.faults.append(Fault(time.time(), kind, target, detail))

    def _sigkill(self, node: Node) -> None:
        down = self.rng.uniform(0.0, 1.0)
        with node.lock:
            self._record("sigkill", node.name, f"down {down:.2f} s")
            node.kill()
            time.sleep(down)
            node.start()

    def _sigstop(self, node: Node) -> None:
        pause = self.pause_s * self.rng.uniform(1.0, 1.5)
        with node.lock:
            self._record("sigstop", node.name, f"stopped {pause:.2f} s")
            node.pause()
            time.sleep(pause)
            node.resume()

    def _terminate(self, node: Node) -> None:
        with node.lock:
            n = self.server.terminate(self.application_name(node))
            self._record("terminate", node.name, f"{n} connection(s)")

    def _pg_restart(self, node: Node) -> None:
        down = self.rng.uniform(0.2, 1.5)
        self._record("pg-restart", "postgres", f"down {down:.2f} s")
        self.server.crash_and_restart(down)
