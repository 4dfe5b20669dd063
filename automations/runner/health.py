"""``GET /healthz``: a summary anyone may see, the detail only with the console token.

Without a valid token the answer is ``{"status": "ok", "recipes": N, "errors": N}`` and nothing
more: no file paths, no webhook paths, no diagnostics (a webhook path is as good as a password
for an unverified recipe, and diagnostics quote the recipe's text). With
``Authorization: Bearer <AUTOMATIONS_CONSOLE_TOKEN>`` the same object carries ``"detail"``: the
recipes (file paths relative to the recipes directory), the diagnostics of files whose latest
edit has errors, runs in flight, reloads, and whatever other parts of the runner register.

The detail is built from named sections (``HealthSection``), so a part of the runner adds its own
(held runs, paused connections, table errors) without touching this module: register it with
``Health.add``. A section may also add to the public count of errors (``errors`` in the summary),
which is what a monitoring probe alerts on.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CONSOLE_TOKEN_ENV", "Health", "HealthSection", "relative_to"]

#: The environment variable holding the token that unlocks ``/healthz``'s detail (and the
#: console's pages).
CONSOLE_TOKEN_ENV = "AUTOMATIONS_CONSOLE_TOKEN"


@dataclass(frozen=True, slots=True)
class HealthSection:
    """One part of the detail: ``detail()`` gives its JSON value (shown under ``name``);
    ``errors()`` how many problems it adds to the public ``errors`` count."""

    name: str
    detail: Callable[[], Any]
    errors: Callable[[], int] = lambda: 0


class Health:
    """What ``/healthz`` answers. ``status`` is ``"ok"`` once started, ``"starting"`` before."""

    def __init__(self, token: str | None) -> None:
        # An empty token would unlock the detail for ``Authorization: Bearer `` : no token.
        self._token = token.encode("utf-8") if token else None
        self._sections: list[HealthSection] = []
        self._recipes: Callable[[], int] = lambda: 0
        self._started: Callable[[], bool] = lambda: False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Health:
        return cls(env.get(CONSOLE_TOKEN_ENV))

    def bind(self, *, started: Callable[[], bool], recipes: Callable[[], int]) -> None:
        """Where the summary's status and recipe count come from."""
        self._started = started
        self._recipes = recipes

    def add(self, section: HealthSection) -> None:
        """Add (or replace, by name) a section of the detail."""
        self._sections = [s for s in self._sections if s.name != section.name] + [section]

    def authorized(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries the console token (compared in
        constant time). Always false when no token is configured."""
        if self._token is None or not authorization:
            return False
        scheme, _, supplied = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(supplied.strip().encode("utf-8"), self._token)

    @property
    def started(self) -> bool:
        return self._started()

    def answer(self, *, detail: bool) -> dict[str, Any]:
        """The summary, with ``"detail"`` when ``detail`` is true."""
        out: dict[str, Any] = {
            "status": "ok" if self._started() else "starting",
            "recipes": self._recipes(),
            "errors": sum(s.errors() for s in self._sections),
        }
        if detail:
            out["detail"] = {s.name: s.detail() for s in self._sections}
        return out


def relative_to(directory: Path, path: str | Path) -> str:
    """``path`` relative to ``directory`` when inside it (symlinks resolved), else its name
    alone: the detail never shows where the runner lives on disk."""
    base = os.path.realpath(directory)
    full = os.path.realpath(path)  # a relative path is relative to the working directory
    if full == base or full.startswith(base + os.sep):
        return os.path.relpath(full, base)
    return Path(path).name
