"""Who may see the console and act through it.

The pages show customers' phone numbers and e-mail addresses, so:

- The console listens on its own address, ``127.0.0.1:8788`` by default. On any other address
  it refuses to start without ``AUTOMATIONS_UI_TOKEN`` (``check_bind``).
- With a token, every page, the event stream and the static files need a session: the login
  form exchanges the token (compared in constant time; failed attempts limited per client) for
  a signed cookie, ``HttpOnly`` and ``SameSite=Strict`` (``Secure`` over https), valid 12 hours.
  The signing key is derived from the token: changing the token ends every session. A program
  (a metrics scraper) sends ``Authorization: Bearer <token>`` instead.
- Without a token (loopback only), requests must name a loopback host (``Host:
  127.0.0.1:8788``, ``localhost``, ``[::1]``): a page elsewhere whose name resolves to 127.0.0.1
  (DNS rebinding) gets nothing.
- Every request that changes something is a POST whose ``Origin`` (or, without one, its
  ``Referer``) is the console itself. The cookie is never sent on a cross-site request
  (``SameSite=Strict``), and the pages set ``Referrer-Policy: same-origin``, under which browsers
  send the real ``Origin`` on a form POST (``no-referrer`` would make it ``null``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from automations.errors import StartupError

__all__ = [
    "COOKIE",
    "SESSION_S",
    "TOKEN_ENV",
    "Gate",
    "Session",
    "check_bind",
    "is_loopback",
    "same_origin",
]

#: The environment variable holding the console's login token.
TOKEN_ENV = "AUTOMATIONS_UI_TOKEN"
#: The session cookie's name.
COOKIE = "automations_session"
#: How long a session lasts.
SESSION_S = 12 * 3600
#: Failed logins allowed per client address in ``_LOGIN_WINDOW_S``.
LOGIN_ATTEMPTS = 10
_LOGIN_WINDOW_S = 60.0
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is only reachable from this machine."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse (``StartupError``) to serve the console on a non-loopback address without a
    token."""
    if not is_loopback(host) and not token:
        raise StartupError(
            f"the console would listen on {host}, which other machines can reach, without a "
            f"login: set {TOKEN_ENV} to a long random value (e.g. `openssl rand -hex 32`), "
            "or keep --ui-host 127.0.0.1, or pass --no-ui. Nothing was read or recorded."
        )


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in person: ``actor`` is the name given at login (for the audit), or ``None``
    (the audit then names the runner's operating-system user, as the CLI does)."""

    actor: str | None
    expires: float


@dataclass
class Gate:
    """The console's access rules for one token (``None``: open, loopback only)."""

    token: str | None
    clock: Callable[[], float] = time.time
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Gate:
        return cls(env.get(TOKEN_ENV) or None)

    @property
    def open(self) -> bool:
        """No login (no token is configured)."""
        return self.token is None

    @property
    def _key(self) -> bytes:
        assert self.token is not None
        return hmac.new(
            self.token.encode("utf-8"), b"automations console session v1", hashlib.sha256
        ).digest()

    # -- the login ------------------------------------------------------------------------------

    def throttled(self, client: str) -> bool:
        """Whether ``client`` has used up its failed logins for now."""
        window = self._failures.get(client)
        if window is None:
            return False
        now = self.clock()
        while window and window[0] <= now - _LOGIN_WINDOW_S:
            window.popleft()
        return len(window) >= LOGIN_ATTEMPTS

    def check_token(self, client: str, supplied: str) -> bool:
        """Whether ``supplied`` is the token (constant time); a failure counts against
        ``client``."""
        if self.token is None:
            return True
        ok = hmac.compare_digest(supplied.encode("utf-8"), self.token.encode("utf-8"))
        if not ok:
            if len(self._failures) > 10_000:  # a flood of addresses: forget the oldest
                self._failures.clear()
            self._failures.setdefault(client, deque()).append(self.clock())
        return ok

    def issue(self, actor: str | None) -> str:
        """A cookie value for a session of ``actor``."""
        expires = int(self.clock()) + SESSION_S
        name = base64.urlsafe_b64encode((actor or "").encode("utf-8")).decode("ascii")
        body = f"v1.{expires}.{name}"
        return f"{body}.{self._sign(body)}"

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, when its signature holds and it has not expired."""
        if self.token is None:
            return Session(None, float("inf"))
        if not cookie or cookie.count(".") != 3:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        _, expires, name = body.split(".")
        if not expires.isdigit() or int(expires) <= self.clock():
            return None
        try:
            actor = base64.urlsafe_b64decode(name.encode("ascii")).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return Session(actor or None, float(expires))

    def bearer(self, authorization: str | None) -> Session | None:
        """A session for a request carrying ``Authorization: Bearer <token>`` (a metrics
        scraper, ``curl``): browsers never send it by themselves, so it is no CSRF risk."""
        if self.token is None or not authorization:
            return None
        scheme, _, supplied = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        if not hmac.compare_digest(supplied.strip().encode("utf-8"), self.token.encode("utf-8")):
            return None
        return Session(None, self.clock() + SESSION_S)

    def _sign(self, body: str) -> str:
        mac = hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    # -- requests ---------------------------------------------------------------------------

    def host_allowed(self, host_header: str | None) -> bool:
        """Without a token, only a loopback ``Host`` (DNS rebinding gets nothing); with one,
        any (the session cookie is what lets a request in)."""
        if self.token is not None:
            return True
        if not host_header:
            return False
        name = urlsplit(f"//{host_header}").hostname or ""
        return name in _LOOPBACK_NAMES or is_loopback(name)


def same_origin(headers: Mapping[str, str], scheme: str) -> bool:
    """Whether a POST comes from the console's own pages: its ``Origin`` (else its
    ``Referer``) names the scheme and host the request was sent to."""
    host = headers.get("host")
    if not host:
        return False
    own = f"{scheme}://{host}".lower()
    origin = headers.get("origin")
    if origin is not None:
        return origin.lower() == own
    referer = headers.get("referer")
    if referer is None:
        return False
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}".lower() == own
