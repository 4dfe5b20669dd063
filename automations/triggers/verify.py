"""Webhook verification: does an incoming request really come from the provider?

Every check runs over the request's *raw* body bytes (re-serialised JSON would not match the
signature) and compares with ``hmac.compare_digest``. A failed check raises ``SignatureError``
whose message names the header and the reason, never the secret or the expected signature.
A secret that cannot be used at all (absent, not base64) is our misconfiguration, not the
sender's fault: that raises ``ConfigError``.

Schemes (see ``VerifyScheme`` and specs/README.md in the repository):

- ``standard-webhooks`` (Loops, Quo's newer webhooks): ``webhook-id``, ``webhook-timestamp``
  (unix seconds) and ``webhook-signature`` (space-separated ``v1,<base64>`` entries, any one may
  match) over ``"<id>.<timestamp>.<body>"``, keyed by the base64 after ``whsec_``.
- ``openphone`` (Quo's legacy webhooks): ``openphone-signature: hmac;1;<ts ms>;<base64>``
  (several comma-separated entries allowed) over ``"<ts ms>.<body>"``, keyed by the base64-decoded
  signing secret.
- ``token``: the header the recipe names carries the secret itself.
- ``none``: everything is accepted (lint warns).

A signature header may list at most ``MAX_SIGNATURES`` entries (providers send one, or two or
three while a secret is being rotated); a longer list is refused before any HMAC is computed.
Each HMAC over the body is computed once per distinct signed message (one for Standard
Webhooks; one per distinct timestamp for OpenPhone), however many entries repeat it. Without
these bounds one request with a 1 MB body and 60,000 entries held the event loop for 41 s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from automations.errors import ConfigError, SignatureError
from automations.model import VerifyScheme

__all__ = [
    "MAX_SIGNATURES",
    "OPENPHONE_SIGNATURE",
    "WEBHOOK_ID",
    "WEBHOOK_SIGNATURE",
    "WEBHOOK_TIMESTAMP",
    "default_event_id",
    "sign_openphone",
    "sign_standard",
    "verify_webhook",
]

WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"
OPENPHONE_SIGNATURE = "openphone-signature"

_WHSEC_PREFIX = "whsec_"
#: Unix times in seconds have 10 digits until 2286; in milliseconds, 13.
_SECONDS_DIGITS = 11

#: The most entries a signature header may list.
MAX_SIGNATURES = 8


def verify_webhook(
    scheme: VerifyScheme,
    *,
    secret: str | None,
    headers: Mapping[str, str],
    body: bytes,
    header: str | None = None,
    now: float | None = None,
    tolerance_s: float = 300,
) -> None:
    """Return if the request verifies under ``scheme``; raise ``SignatureError`` if not.

    ``headers`` are looked up case-insensitively; ``header`` names the token header (``token``
    scheme only); ``now`` is unix seconds (default: the current time); a signed timestamp more
    than ``tolerance_s`` away from ``now``, in either direction, is refused (replay protection).
    Raises ``ConfigError`` when the scheme needs a secret (or header name) that is missing or
    unusable.
    """
    if scheme is VerifyScheme.NONE:
        return
    lowered = {name.lower(): value for name, value in headers.items()}
    current = time.time() if now is None else now
    if scheme is VerifyScheme.STANDARD_WEBHOOKS:
        _verify_standard(_require_secret(secret, scheme), lowered, body, current, tolerance_s)
    elif scheme is VerifyScheme.OPENPHONE:
        _verify_openphone(_require_secret(secret, scheme), lowered, body, current, tolerance_s)
    elif scheme is VerifyScheme.TOKEN:
        _verify_token(_require_secret(secret, scheme), lowered, header)
    else:  # pragma: no cover - exhaustive over VerifyScheme
        raise AssertionError(scheme)


def default_event_id(
    scheme: VerifyScheme, headers: Mapping[str, str], body_json: Any
) -> str | None:
    """The delivery's identity when the recipe names none: the ``webhook-id`` header for
    Standard Webhooks, the body's ``"id"`` for OpenPhone, otherwise ``None``. Providers resend a
    delivery with the same identity, so the inbox runs it once."""
    if scheme is VerifyScheme.STANDARD_WEBHOOKS:
        lowered = {name.lower(): value for name, value in headers.items()}
        return lowered.get(WEBHOOK_ID) or None
    if scheme is VerifyScheme.OPENPHONE and isinstance(body_json, dict):
        event_id = body_json.get("id")
        if isinstance(event_id, str) and event_id:
            return event_id
    return None


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) a Standard Webhooks sender would send."""
    digest = _hmac(_standard_key(secret), f"{msg_id}.{timestamp}.".encode() + body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_openphone(secret: str, ts_ms: int, body: bytes) -> str:
    """The ``openphone-signature`` value (``hmac;1;<ts ms>;<base64>``) Quo would send."""
    digest = _hmac(_openphone_key(secret), f"{ts_ms}.".encode() + body)
    return f"hmac;1;{ts_ms};" + base64.b64encode(digest).decode("ascii")


def _verify_standard(
    secret: str, headers: dict[str, str], body: bytes, now: float, tolerance_s: float
) -> None:
    key = _standard_key(secret)
    msg_id = _require_header(headers, WEBHOOK_ID)
    raw_timestamp = _require_header(headers, WEBHOOK_TIMESTAMP)
    signatures = _require_header(headers, WEBHOOK_SIGNATURE)
    try:
        timestamp = int(raw_timestamp.strip())
    except ValueError:
        raise SignatureError(f"{WEBHOOK_TIMESTAMP} header is not a unix timestamp") from None
    # The timestamp is checked first, as the Standard Webhooks reference does: a stale but
    # correctly signed request is a replay.
    if timestamp > 10**_SECONDS_DIGITS and abs(timestamp / 1000 - now) <= tolerance_s:
        raise SignatureError(
            f"{WEBHOOK_TIMESTAMP} {timestamp} is in milliseconds; Standard Webhooks sign with "
            "seconds since 1970 (10 digits)"
        )
    _check_age(timestamp, now, tolerance_s)
    entries = signatures.split(None, MAX_SIGNATURES)
    if len(entries) > MAX_SIGNATURES:
        raise _too_many(WEBHOOK_SIGNATURE)
    expected = _hmac(key, f"{msg_id}.{timestamp}.".encode() + body)
    candidates = []
    for entry in entries:
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # other versions (v1a: asymmetric) are not ours to check
        decoded = _b64decode(encoded)
        if decoded is not None:
            candidates.append(decoded)
    if not candidates:
        raise SignatureError(f"{WEBHOOK_SIGNATURE} header has no well-formed v1 signature")
    if not _any_matches(expected, candidates):
        raise SignatureError(f"{WEBHOOK_SIGNATURE} does not match the body")


def _verify_openphone(
    secret: str, headers: dict[str, str], body: bytes, now: float, tolerance_s: float
) -> None:
    key = _openphone_key(secret)
    value = _require_header(headers, OPENPHONE_SIGNATURE)
    listed = value.split(",", MAX_SIGNATURES)
    if len(listed) > MAX_SIGNATURES:
        raise _too_many(OPENPHONE_SIGNATURE)
    entries: list[tuple[str, bytes]] = []
    for entry in listed:
        parts = entry.strip().split(";")
        if len(parts) != 4 or parts[:2] != ["hmac", "1"] or not _is_ascii_digits(parts[2]):
            continue
        decoded = _b64decode(parts[3])
        if decoded is not None:
            entries.append((parts[2], decoded))
    if not entries:
        raise SignatureError(f"{OPENPHONE_SIGNATURE} header is malformed")
    # Each entry signs its own timestamp, so the signature is checked first and the age of the
    # matching entry after: "too old" then means a genuine but replayed request.
    digests: dict[str, bytes] = {}  # one HMAC over the body per distinct timestamp
    matching = []
    for ts, sig in entries:
        digest = digests.get(ts)
        if digest is None:
            digest = digests[ts] = _hmac(key, f"{ts}.".encode() + body)
        if _any_matches(digest, [sig]):
            matching.append(ts)
    if not matching:
        raise SignatureError(f"{OPENPHONE_SIGNATURE} does not match the body")
    best = min(matching, key=lambda ts: abs(int(ts) / 1000 - now))
    if len(best) <= _SECONDS_DIGITS and abs(int(best) - now) <= tolerance_s:
        # Quo signs with milliseconds; a sender (a relay, a test script) that signed with seconds
        # is told so, rather than that its fresh request is 50 years old.
        raise SignatureError(
            f"{OPENPHONE_SIGNATURE} timestamp {best} is in seconds; Quo signs with milliseconds "
            "since 1970 (13 digits)"
        )
    _check_age(int(best) / 1000, now, tolerance_s)


def _verify_token(secret: str, headers: dict[str, str], header: str | None) -> None:
    if not header:
        raise ConfigError("token verification needs the name of the header carrying the token")
    name = header.lower()
    supplied = _require_header(headers, name)
    if not hmac.compare_digest(supplied.encode("utf-8"), secret.encode("utf-8")):
        raise SignatureError(f"{name} header does not match the token")


def _too_many(header: str) -> SignatureError:
    return SignatureError(f"{header} lists more than {MAX_SIGNATURES} signatures")


def _check_age(timestamp: float, now: float, tolerance_s: float) -> None:
    if now - timestamp > tolerance_s:
        raise SignatureError("timestamp too old")
    if timestamp - now > tolerance_s:
        raise SignatureError("timestamp too new")


def _require_secret(secret: str | None, scheme: VerifyScheme) -> str:
    if not secret:
        raise ConfigError(f"{scheme.value} verification needs a secret, and none is set")
    return secret


def _require_header(headers: dict[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise SignatureError(f"missing {name} header")
    return value


def _standard_key(secret: str) -> bytes:
    encoded = secret.strip().removeprefix(_WHSEC_PREFIX)
    # Secrets are often copied without their "=" padding; the official libraries accept them.
    key = _b64decode(encoded + "=" * (-len(encoded) % 4))
    if key is None or not key:
        raise ConfigError("the standard-webhooks secret is not whsec_ followed by base64")
    return key


def _openphone_key(secret: str) -> bytes:
    key = _b64decode(secret)
    if key is None or not key:
        raise ConfigError("the openphone signing secret is not base64")
    return key


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _any_matches(expected: bytes, candidates: list[bytes]) -> bool:
    # Every candidate is compared (no early exit) so timing does not reveal which one matched.
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(expected, candidate)
    return found
