"""How a runner holds the runs it executes: leases, kept alive off the event loop.

A runner (a node) claims runs from the shared inbox (``ports.ClaimStore``): the runs it
records itself at once (the claim is their insert), the others in pages per recipe as its
dispatcher has room, found by a claim loop that looks every ``poll_s`` or when woken. Each
claim is a lease of ``ttl_s``:

- ``LeaseKeeper`` renews this node's leases every ``heartbeat_s`` and returns other nodes'
  expired leases to ``pending`` every ``rescue_every_s`` (``grace_s`` after expiry). It runs on
  a thread of its own with its own store calls, so a busy event loop never looks like a dead
  node; it also watches a tick of the event loop and stops renewing when the loop hangs
  (``stall_s``): a hung node loses its runs instead of holding them forever.
- A node that stops renewing (killed, paused, cut off) loses its runs after ``ttl_s`` +
  ``grace_s`` + at most ``rescue_every_s``: another node continues them, applying the resume
  rule (a Loops event resent with the same key, an SMS left ``sending`` becomes ``unknown``).
  The fence in the store makes sure the old owner, if it wakes up, sends nothing more.

Defaults give a takeover within a minute (30 s lease, renewed every 10 s, rescued every 15 s
with 5 s of grace); ``AUTOMATIONS_LEASE_TTL``, ``AUTOMATIONS_LEASE_HEARTBEAT``,
``AUTOMATIONS_LEASE_RESCUE_EVERY``, ``AUTOMATIONS_LEASE_GRACE`` and
``AUTOMATIONS_CLAIM_POLL`` (seconds) change them (tests use a few seconds).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from automations.errors import ConfigError, StoreError
from automations.ports import ClaimStore

__all__ = ["ClaimSettings", "LeaseKeeper", "node_name"]

log = logging.getLogger("automations.runner")

_ENV = {
    "ttl_s": "AUTOMATIONS_LEASE_TTL",
    "heartbeat_s": "AUTOMATIONS_LEASE_HEARTBEAT",
    "rescue_every_s": "AUTOMATIONS_LEASE_RESCUE_EVERY",
    "grace_s": "AUTOMATIONS_LEASE_GRACE",
    "poll_s": "AUTOMATIONS_CLAIM_POLL",
}


@dataclass(frozen=True, slots=True)
class ClaimSettings:
    """Lease and claim timings, in seconds."""

    #: How long a claim holds a run without renewal.
    ttl_s: float = 30.0
    #: How often a node renews its leases.
    heartbeat_s: float = 10.0
    #: How often a node returns expired leases (of any node) to ``pending``.
    rescue_every_s: float = 15.0
    #: How long past its expiry a lease is left alone (clock skew, a slow renewal).
    grace_s: float = 5.0
    #: How often the claim loop looks for runs no node claimed.
    poll_s: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClaimSettings:
        """The defaults, with what the ``AUTOMATIONS_LEASE_*`` / ``AUTOMATIONS_CLAIM_POLL``
        variables say; ``ConfigError`` for a value that is not a positive number or a
        heartbeat not shorter than the lease."""
        values: dict[str, float] = {}
        for f in fields(cls):
            name = _ENV[f.name]
            text = env.get(name, "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not value > 0 or value != value or value == float("inf"):
                raise ConfigError(f"{name} must be a number of seconds above 0, not {text!r}")
            values[f.name] = value
        settings = cls(**values)
        if settings.heartbeat_s >= settings.ttl_s:
            raise ConfigError(
                f"AUTOMATIONS_LEASE_HEARTBEAT ({settings.heartbeat_s:g} s) must be shorter than "
                f"AUTOMATIONS_LEASE_TTL ({settings.ttl_s:g} s), or leases expire between renewals"
            )
        return settings


def node_name(node_id: str | None = None) -> str:
    """This process's name as a lease owner: ``node_id`` (``--node-id``; default the host's
    name), the pid and a random part. A restarted process is another node even under the same
    id: the runs the dead one held are rescued, never renewed by its successor."""
    return f"{node_id or socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class LeaseKeeper:
    """Renews ``owner``'s leases and rescues expired ones, on a thread of its own.

    ``tick`` is called by the event loop now and then (``beat``); when the loop has not ticked
    for ``stall_s``, renewals stop (its runs are rescued elsewhere, and its fenced writes fail).
    ``renewed`` hears of the leases each renewal kept (run id -> token), ``rescued`` of the
    runs each rescue returned to ``pending``.
    """

    def __init__(
        self,
        store: ClaimStore,
        owner: str,
        settings: ClaimSettings,
        *,
        stall_s: float | None = None,
        rescued: Callable[[dict[str, int]], None] | None = None,
        renewed: Callable[[dict[str, int]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.owner = owner
        self.settings = settings
        self.stall_s = settings.ttl_s if stall_s is None else stall_s
        self._rescued = rescued
        self._renewed = renewed
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tick = clock()
        self.renewals = 0
        self.rescues = 0

    def beat(self) -> None:
        """The event loop is alive (called from it)."""
        self._tick = self._clock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        s = self.settings
        next_renew = self._clock() + s.heartbeat_s
        next_rescue = self._clock()
        while not self._stop.is_set():
            now = self._clock()
            if now >= next_renew:
                next_renew = now + s.heartbeat_s
                self.renew_once()
            if now >= next_rescue:
                next_rescue = now + s.rescue_every_s
                self.rescue_once()
            self._stop.wait(max(0.01, min(next_renew, next_rescue) - self._clock()))

    def renew_once(self) -> None:
        if self._clock() - self._tick > self.stall_s:
            log.error(
                "the runner's event loop has not answered for %.0f s: its leases are not "
                "renewed, so other runners take over its runs",
                self._clock() - self._tick,
            )
            return
        try:
            held = self.store.renew(self.owner, ttl_s=self.settings.ttl_s)
            self.renewals += 1
        except StoreError as exc:  # tried again at the next heartbeat, well within the lease
            log.warning("could not renew this runner's leases: %s", exc)
            return
        if self._renewed is not None:
            self._renewed(held)

    def rescue_once(self) -> None:
        try:
            rescued = self.store.rescue_expired(grace_s=self.settings.grace_s)
        except StoreError as exc:
            log.warning("could not look for runs whose runner stopped: %s", exc)
            return
        if rescued:
            self.rescues += len(rescued)
            log.warning(
                "%d run(s) whose runner stopped renewing its lease are ready again: %s",
                len(rescued),
                ", ".join(sorted(r[:12] for r in rescued)[:10]),
            )
            if self._rescued is not None:
                self._rescued(rescued)
