"""Where each provider connection sends, with which credentials, at which rate.

``ConnectionSettings.from_env`` reads the environment once:

    Quo direct       QUO_API_KEY      QUO_BASE_URL    (https://api.openphone.com)
                     -> {QUO_BASE_URL}/v1/...,  Authorization: <key>  (no "Bearer")
    Quo via Maton    MATON_API_KEY    MATON_BASE_URL  (https://gateway.maton.ai)
                     MATON_CONNECTION (optional, sent as Maton-Connection)
                     -> {MATON_BASE_URL}/quo/v1/...,  Authorization: Bearer <key>
    Loops            LOOPS_API_KEY    LOOPS_BASE_URL  (https://app.loops.so/api)
                     -> {LOOPS_BASE_URL}/v1/...,  Authorization: Bearer <key>
    Rates            QUO_RATE_LIMIT, LOOPS_RATE_LIMIT ("10", "10/s", "600/min"; default 10/s)
                     AUTOMATIONS_RATE_GUARD_MS (pacing safety margin per second; default 10)
    Breaker          AUTOMATIONS_PROBE_EVERY_S (seconds between probes of a paused connection;
                     default 60; see ``breaker.py``)

Quo goes through Maton when ``QUO_API_KEY`` is unset or ``AUTOMATIONS_QUO_VIA=maton``. A key that
is needed but missing is a ``ConfigError`` naming the variable to set, raised when the first
request needs it, so recipes that use only Loops run without Quo keys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

import httpx

from automations import __version__
from automations.errors import ConfigError
from automations.outbound import Connection

__all__ = [
    "DEFAULT_RATE",
    "USER_AGENT",
    "ConnectionSettings",
    "Endpoint",
    "mask_headers",
    "mask_url",
    "parse_rate",
]

USER_AGENT = f"automations/{__version__}"
DEFAULT_RATE = 10.0
MASK = "***"
QUO_BASE_URL = "https://api.openphone.com"
MATON_BASE_URL = "https://gateway.maton.ai"
LOOPS_BASE_URL = "https://app.loops.so/api"

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*\Z", re.I)
_SECRET_NAME = re.compile(
    r"authorization|cookie|token|secret|passw|signature|session|credential|api[-_]?key|(^|[-_])key$",
    re.I,
)
_NOT_SECRET = frozenset({"idempotency-key"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How requests of one connection go out: base URL, headers (with the key), rate."""

    connection: Connection
    #: For messages: "Quo", "Quo (via Maton)", "Loops".
    name: str
    #: Request URL = ``base_url + path``.
    base_url: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    #: The environment variable holding the key (for "check QUO_API_KEY" advice).
    variable: str
    #: Identifies the key and where it is sent without revealing the key (a hash of both):
    #: requests with one key share one limiter, on every node when pacing is shared.
    limiter_key: str
    #: Requests per second.
    rate: float

    def url(self, path: str) -> str:
        return self.base_url + path


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Provider endpoints and keys. ``repr`` never shows a key."""

    quo_api_key: str | None = field(default=None, repr=False)
    quo_base_url: str = QUO_BASE_URL
    maton_api_key: str | None = field(default=None, repr=False)
    maton_base_url: str = MATON_BASE_URL
    maton_connection: str | None = None
    #: "direct", "maton", or ``None``: direct when ``quo_api_key`` is set, else Maton.
    quo_via: str | None = None
    loops_api_key: str | None = field(default=None, repr=False)
    loops_base_url: str = LOOPS_BASE_URL
    quo_rate: float = DEFAULT_RATE
    loops_rate: float = DEFAULT_RATE
    #: Seconds added to every second of pacing (see ``RateLimiter``).
    rate_guard: float = 0.01
    #: Seconds between two probes of a connection paused by its breaker.
    probe_every_s: float = 60.0
    user_agent: str = USER_AGENT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectionSettings:
        """Settings from environment variables (see the module docstring).

        Raises ``ConfigError`` naming the variable when a value is malformed.
        """

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        via = get("AUTOMATIONS_QUO_VIA")
        if via is not None and via.lower() not in ("direct", "maton"):
            raise ConfigError(
                f"AUTOMATIONS_QUO_VIA must be 'direct' or 'maton', not {via!r}",
                variable="AUTOMATIONS_QUO_VIA",
            )
        guard_ms = get("AUTOMATIONS_RATE_GUARD_MS")
        try:
            guard = float(guard_ms) / 1000.0 if guard_ms else 0.01
            if not 0 <= guard < 1:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"AUTOMATIONS_RATE_GUARD_MS must be milliseconds from 0 to 999, not {guard_ms!r}",
                variable="AUTOMATIONS_RATE_GUARD_MS",
            ) from None
        probe = get("AUTOMATIONS_PROBE_EVERY_S")
        try:
            probe_s = float(probe) if probe else 60.0
            if not 0 < probe_s <= 86400:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"AUTOMATIONS_PROBE_EVERY_S must be seconds from 0 to 86400, not {probe!r}",
                variable="AUTOMATIONS_PROBE_EVERY_S",
            ) from None
        return cls(
            quo_api_key=get("QUO_API_KEY"),
            quo_base_url=_base_url(env, "QUO_BASE_URL", QUO_BASE_URL),
            maton_api_key=get("MATON_API_KEY"),
            maton_base_url=_base_url(env, "MATON_BASE_URL", MATON_BASE_URL),
            maton_connection=get("MATON_CONNECTION"),
            quo_via=via.lower() if via else None,
            loops_api_key=get("LOOPS_API_KEY"),
            loops_base_url=_base_url(env, "LOOPS_BASE_URL", LOOPS_BASE_URL),
            quo_rate=parse_rate(get("QUO_RATE_LIMIT"), "QUO_RATE_LIMIT"),
            loops_rate=parse_rate(get("LOOPS_RATE_LIMIT"), "LOOPS_RATE_LIMIT"),
            rate_guard=guard,
            probe_every_s=probe_s,
        )

    @property
    def plain_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers for ``http.request`` (no credentials)."""
        return (("User-Agent", self.user_agent),)

    def secrets(self) -> dict[str, str]:
        """``{variable: value}`` of the configured keys, to build a ``Redactor`` from."""
        pairs = {
            "QUO_API_KEY": self.quo_api_key,
            "MATON_API_KEY": self.maton_api_key,
            "LOOPS_API_KEY": self.loops_api_key,
        }
        return {name: value for name, value in pairs.items() if value}

    def quo_through_maton(self) -> bool:
        """Maton when asked for, or when only a Maton key is configured; otherwise direct
        (with no key at all, previews show Quo's own URL)."""
        if self.quo_via is not None:
            return self.quo_via == "maton"
        return self.quo_api_key is None and self.maton_api_key is not None

    def base_url_for(self, connection: Connection) -> str | None:
        """The base URL requests of ``connection`` go to (no key needed; ``None`` for HTTP)."""
        if connection is Connection.LOOPS:
            return self.loops_base_url
        if connection is Connection.QUO:
            return self.maton_base_url + "/quo" if self.quo_through_maton() else self.quo_base_url
        return None

    def endpoint(self, connection: Connection) -> Endpoint | None:
        """The endpoint for ``connection``; ``None`` for ``HTTP`` (the URL is the request's).

        Raises ``ConfigError`` naming the variable to set when the API key is missing.
        """
        ua = ("User-Agent", self.user_agent)
        if connection is Connection.LOOPS:
            key = _require(self.loops_api_key, "LOOPS_API_KEY", "Loops needs an API key")
            return Endpoint(
                connection,
                "Loops",
                self.loops_base_url,
                (("Authorization", f"Bearer {key}"), ua),
                "LOOPS_API_KEY",
                _limiter_key("loops", self.loops_base_url, key),
                self.loops_rate,
            )
        if (
            connection is Connection.QUO
            and self.quo_via is None
            and not (self.quo_api_key or self.maton_api_key)
        ):
            raise ConfigError(
                "Quo needs an API key: set QUO_API_KEY (direct) or MATON_API_KEY "
                "(through the Maton gateway)",
                variable="QUO_API_KEY or MATON_API_KEY",
            )
        if connection is Connection.QUO and self.quo_through_maton():
            key = _require(self.maton_api_key, "MATON_API_KEY", "AUTOMATIONS_QUO_VIA is maton")
            headers = [("Authorization", f"Bearer {key}"), ua]
            if self.maton_connection:
                headers.append(("Maton-Connection", self.maton_connection))
            return Endpoint(
                connection,
                "Quo (via Maton)",
                self.maton_base_url + "/quo",  # Maton routes by the first path segment
                tuple(headers),
                "MATON_API_KEY",
                _limiter_key("maton", self.maton_base_url, key),
                self.quo_rate,
            )
        if connection is Connection.QUO:
            key = _require(self.quo_api_key, "QUO_API_KEY", "AUTOMATIONS_QUO_VIA is direct")
            return Endpoint(
                connection,
                "Quo",
                self.quo_base_url,
                (("Authorization", key), ua),
                "QUO_API_KEY",
                _limiter_key("quo", self.quo_base_url, key),
                self.quo_rate,
            )
        return None


def parse_rate(text: str | None, variable: str) -> float:
    """Requests per second from ``"10"``, ``"10/s"`` or ``"600/min"``; default 10."""
    if text is None:
        return DEFAULT_RATE
    m = _RATE.match(text)
    value = float(m.group(1)) if m else 0.0
    if m is None or value <= 0:
        raise ConfigError(
            f"{variable} must be a positive rate like 10, 10/s or 600/min, not {text!r}",
            variable=variable,
        )
    unit = (m.group(2) or "s").lower()
    return value / 60.0 if unit.startswith("m") else value


def mask_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``headers`` with the values of ``Authorization`` and secret-looking names as ``***``."""
    return tuple((name, MASK if is_secret_name(name) else value) for name, value in headers)


def is_secret_name(name: str) -> bool:
    return name.lower() not in _NOT_SECRET and _SECRET_NAME.search(name) is not None


def mask_url(url: str) -> str:
    """``url`` with secret-looking query parameters (``token=``, ``api_key=``) and any
    user:password masked."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    query = parsed.query.decode("ascii", "replace")
    if not query and not parsed.userinfo:
        return url
    # Only the values of secret-named parameters change; every other part keeps the bytes it is
    # sent with (re-encoding would turn a value the Redactor knows into one it may not).
    masked = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        masked.append(f"{name}={MASK}" if eq and is_secret_name(unquote_plus(name)) else part)
    clean = parsed.copy_with(userinfo=b"***" if parsed.userinfo else None)
    return str(clean.copy_with(query="&".join(masked).encode() or None))


def _base_url(env: Mapping[str, str], variable: str, default: str) -> str:
    value = env.get(variable, "").strip().rstrip("/")
    if not value:
        return default
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"{variable} must be an absolute http(s) URL, not {value!r}", variable=variable
        )
    return value


def _require(value: str | None, variable: str, context: str) -> str:
    if value is None:
        raise ConfigError(f"{context}: set {variable}", variable=variable)
    return value


def _limiter_key(prefix: str, base_url: str, key: str) -> str:
    """``prefix:`` and a hash of the host and the key: a key sent to two hosts (a sandbox and
    production) is paced apart; the key itself never shows (it names a row in PostgreSQL)."""
    digest = hashlib.sha256(f"{base_url}\n{key}".encode()).hexdigest()[:24]
    return f"{prefix}:{digest}"
