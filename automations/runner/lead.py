"""The lead: which node fires the schedules, watches the tables and prunes old runs.

Several runners sharing a PostgreSQL store are identical; the work that must be done by one of
them goes to the node holding the ``sources`` leader lease (``stores/leaders.py``: a row with a
term, never a session lock). Correctness never rests on it: a schedule's fire times and a
table's rows become runs unique by ``(recipe, event_key)``, so two nodes that both believe they
lead (one stalled and has not noticed yet) record each event once. The lease saves the work of
doing it twice.

- The lease lasts ``ttl_s`` (15 s) and is renewed every third of it. Each check is one
  statement on a thread of its own (a busy execution queue never delays it), given a third of
  the lease to answer.
- A node that takes the lead starts the sources; a schedule reads its last fire time from the
  store and catches up on the fire times missed meanwhile exactly as after a restart (its
  ``missed:`` policy), a table is scanned against the keys the store remembers.
- A node loses the lead when another has taken it (its own lease had run out: it stalled), or
  when it could not renew before its lease ran out (measured on its own clock from when the
  last successful renewal was asked): it stops its sources before another can have taken over.
- A clean stop gives the lead up, so another node takes it at its next check (within a third of
  the lease), not after the lease runs out.

On a store one process owns (SQLite, memory) the lease is in memory and this node always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from automations.errors import StoreError
from automations.ports import Leaders
from automations.stores.leaders import MemoryLeaders
from automations.stores.thread import StoreThread

__all__ = ["LEAD", "Lead", "node_id"]

log = logging.getLogger("automations.runner")

#: The name of the lease over schedules, table watching and pruning.
LEAD = "sources"


def node_id() -> str:
    """This process's name among the nodes sharing a store: host, process id, and a random
    part (a restarted process with a recycled id is another node)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lead:
    """This node's hold on the ``LEAD`` lease of ``leaders``; ``changed`` is awaited whenever
    ``leading`` changes."""

    def __init__(
        self,
        leaders: Leaders,
        *,
        ttl_s: float = 15.0,
        changed: Callable[[], Awaitable[None]],
        node: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leaders = leaders
        self.ttl_s = ttl_s
        self.node = node or node_id()
        self._changed = changed
        self._clock = clock
        self._io = StoreThread("store-lead")
        self._leading = False
        self._term: int | None = None
        self._until = 0.0  # monotonic time the lease held by this node runs out
        self._told = False
        #: Whether leading is worth a log line (several nodes may share the store).
        self._shared = not isinstance(leaders, MemoryLeaders)

    @property
    def leading(self) -> bool:
        """Whether this node fires the schedules, watches the tables and prunes now."""
        return self._leading

    @property
    def term(self) -> int | None:
        """The term of this node's current lead (``None`` when it does not lead)."""
        return self._term if self._leading else None

    def view(self) -> dict[str, object]:
        """What ``/healthz`` shows: this node's name, whether it leads, in which term."""
        return {"node": self.node, "leading": self._leading, "term": self.term}

    async def keep(self) -> None:
        """Check the lead every third of the lease, for ever."""
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await self.check()
            except Exception:  # a bug must not end the loop: the next turn tries again
                log.exception("the leader lease could not be checked")

    async def check(self) -> None:
        """Take or renew the lead; tell ``changed`` when it is taken or lost."""
        asked = self._clock()
        term: int | None = None
        problem: str | None = None
        try:
            term = await asyncio.wait_for(
                self._io(self.leaders.acquire, LEAD, self.node, self.ttl_s), self.ttl_s / 3
            )
        except StoreError as exc:
            problem = str(exc)
        except TimeoutError:
            problem = f"no answer within {self.ttl_s / 3:g} s"
        if term is not None:
            self._until = asked + self.ttl_s
            if not self._leading or term != self._term:
                self._leading, self._term = True, term
                if self._shared:
                    log.info(
                        "this node leads (term %d): schedules, table watching and pruning run "
                        "here; schedules catch up on fire times missed meanwhile",
                        term,
                    )
                await self._changed()
            return
        if self._leading and (problem is None or self._clock() >= self._until):
            self._leading = False
            log.warning(
                "this node no longer leads (%s): its schedules and table watching stop; the "
                "node that leads now runs them",
                problem or "another node took the lead after this one's lease ran out",
            )
            await self._changed()
        elif not self._leading and not self._told:
            self._told = True
            if problem is None:
                log.info(
                    "another node leads: schedules, table watching and pruning run there; this "
                    "node takes over if that one stops renewing its lease (%g s)",
                    self.ttl_s,
                )
            else:
                log.warning("could not take the lead (%s); trying again", problem)

    async def resign(self) -> None:
        """Give the lead up (a clean stop), so that another node takes it at once."""
        if not self._leading:
            return
        self._leading = False
        with contextlib.suppress(StoreError, TimeoutError):  # else it expires by itself
            await asyncio.wait_for(self._io(self.leaders.release, LEAD, self.node), 5.0)

    def close(self) -> None:
        """End the lease thread (after the calls already made)."""
        self._io.close()
